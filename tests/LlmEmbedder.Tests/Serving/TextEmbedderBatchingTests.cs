using System.Collections.Concurrent;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Tests.Serving;

/// <summary>
/// The library type's dynamic batching, on a real model: concurrent calls are merged into batches within the text and
/// padded-token budgets and get exactly what one call at a time gets; a full queue refuses at once; a cancelled call
/// leaves the others alone; disposing finishes what was queued; truncation off refuses an over-long text with its
/// token count.
/// </summary>
public sealed class TextEmbedderBatchingTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("batching");
    private readonly string model;

    public TextEmbedderBatchingTests() => model = ServingModel.Create(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>A model that holds its first forward pass until released, so calls pile up behind it.</summary>
    private sealed class GatedModel(IEmbeddingModel inner) : IEmbeddingModel
    {
        public ManualResetEventSlim Entered { get; } = new();
        public ManualResetEventSlim Release { get; } = new();
        public BertTokenizer Tokenizer => inner.Tokenizer;
        public EncoderSpec Spec => inner.Spec;
        public int Dimension => inner.Dimension;

        public float[] Embed(TokenBatch batch)
        {
            Entered.Set();
            Release.Wait(TimeSpan.FromMinutes(1));
            return inner.Embed(batch);
        }

        public void Dispose() => inner.Dispose();
    }

    private static string[] CallTexts(int call) =>
        Enumerable.Range(0, 1 + call % 5).Select(i => ServingModel.Texts[(call + i) % ServingModel.Texts.Length] + new string('字', call % 7)).ToArray();

    [Fact]
    public async Task ConcurrentCallsAreMergedWithinTheBudgetsAndEqualOneCallAtATime()
    {
        using var encoder = SentenceEncoder.Load(model);
        var options = new TextEmbedderOptions { MaxBatchSize = 8, MaxBatchTokens = 120 };
        const int calls = 24;
        var alone = new List<Embeddings>();
        using (var sequential = new TextEmbedder(encoder, encoder, "m", options))
            for (int call = 0; call < calls; call++) alone.Add(await sequential.EmbedAsync(CallTexts(call), EmbeddingRole.Key, "qa"));

        var gated = new GatedModel(encoder);
        var batches = new ConcurrentQueue<BatchStatistics>();
        using var embedder = new TextEmbedder(gated, gated, "m", options);
        embedder.BatchCompleted += batches.Enqueue;
        var first = embedder.EmbedAsync(["先到"], EmbeddingRole.Key, "qa");
        gated.Entered.Wait(TimeSpan.FromMinutes(1));
        var pending = Enumerable.Range(0, calls).Select(call => embedder.EmbedAsync(CallTexts(call), EmbeddingRole.Key, "qa")).ToList();
        Assert.Equal(calls, embedder.Waiting);
        gated.Release.Set();
        await first;
        var together = await Task.WhenAll(pending);

        for (int call = 0; call < calls; call++)
        {
            Assert.Equal(alone[call].TokenCount, together[call].TokenCount);
            EmbeddingAssert.Equal(alone[call].Values, together[call].Values, $"call {call}");
        }
        int texts = Enumerable.Range(0, calls).Sum(c => CallTexts(c).Length);
        var merged = batches.Skip(1).ToList();
        Assert.Equal(texts, merged.Sum(b => b.Texts));
        Assert.All(merged, b => Assert.True(b.Texts <= 8 && (b.PaddedTokens <= 120 || b.Texts == 1), $"{b.Texts} texts, {b.PaddedTokens} padded tokens"));
        Assert.True(merged.Count < calls, $"{merged.Count} forward passes for {calls} calls: nothing was merged");
    }

    [Fact]
    public async Task AFullQueueRefusesAtOnceAndACancelledCallLeavesTheOthers()
    {
        using var encoder = SentenceEncoder.Load(model);
        var gated = new GatedModel(encoder);
        using var embedder = new TextEmbedder(gated, gated, "m", new TextEmbedderOptions { MaxQueue = 2 });
        var running = embedder.EmbedAsync(["一"], EmbeddingRole.Query, "qa");
        gated.Entered.Wait(TimeSpan.FromMinutes(1));
        using var cancel = new CancellationTokenSource();
        var cancelled = embedder.EmbedAsync(["二"], EmbeddingRole.Query, "qa", cancel.Token);
        var kept = embedder.EmbedAsync(["三"], EmbeddingRole.Query, "qa");
        var full = Assert.Throws<QueueFullException>(() => { _ = embedder.EmbedAsync(["四"], EmbeddingRole.Query, "qa"); });
        Assert.Equal(2, full.MaxQueue);

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        var again = embedder.EmbedAsync(["四"], EmbeddingRole.Query, "qa");   // the cancelled call's place is free
        gated.Release.Set();
        await Task.WhenAll(running, kept, again);
        var expected = await embedder.EmbedAsync(["三"], EmbeddingRole.Query, "qa");
        EmbeddingAssert.Equal(expected.Values, (await kept).Values, "the call behind the cancelled one");
    }

    [Fact]
    public async Task DisposeFinishesTheQueuedCalls()
    {
        using var encoder = SentenceEncoder.Load(model);
        var gated = new GatedModel(encoder);
        var embedder = new TextEmbedder(gated, gated, "m");
        var calls = Enumerable.Range(0, 5).Select(call => embedder.EmbedAsync(CallTexts(call), EmbeddingRole.Key, "icl")).ToList();
        gated.Entered.Wait(TimeSpan.FromMinutes(1));
        var disposing = Task.Run(embedder.Dispose);
        await Task.Delay(100);
        Assert.False(disposing.IsCompleted);
        gated.Release.Set();
        await disposing;
        foreach (var call in calls) Assert.True(call.IsCompletedSuccessfully);
        Assert.Throws<ObjectDisposedException>(() => { _ = embedder.EmbedAsync(["晚了"], EmbeddingRole.Key, "icl"); });
    }

    [Fact]
    public void WithTruncationOffAnOverLongTextIsRefusedWithItsTokenCount()
    {
        using var embedder = TextEmbedder.Load(model, new TextEmbedderOptions { Truncate = false });
        var text = string.Concat(Enumerable.Repeat("很长的段落文本。", 10));
        var tooLong = Assert.Throws<InputTooLongException>(() => embedder.Tokenize(["短", text], EmbeddingRole.Key, "qa"));
        Assert.Equal(1, tooLong.Index);
        Assert.Equal(ServingModel.KeyMaxLength, tooLong.MaxLength);
        Assert.Equal(ServingModel.TokenCounts(model, [ServingModel.Qa.Key + text], 512)[0], tooLong.Tokens);
        Assert.Equal(ServingModel.KeyMaxLength, embedder.Tokenize([text], EmbeddingRole.Key, "qa", truncate: true).TokenCount);
    }
}
