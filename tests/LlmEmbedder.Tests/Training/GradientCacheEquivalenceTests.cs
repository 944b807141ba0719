using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// --mini_batch_size (gradient caching) against the plain step on batch 16 × group 8 with texts of many lengths: the
/// same loss, the same gradient of every parameter, the same weights after three AdamW steps, for the contrastive loss
/// and the two distillation losses. With dropout on, the plain step draws its masks for the whole batch at once, so no
/// chunked forward can draw the same ones; there the cached step is compared with autograd through the chunked forward
/// kept whole (every chunk's graph alive, no cache, no replay), which has exactly the masks the cached step must replay.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class GradientCacheEquivalenceTests : IDisposable
{
    private const int Batch = 16, Group = 8, MiniBatch = 4;
    // The acceptance bounds. Measured: losses agree to about 1e-7, the whole gradient to a few 1e-6 (float32 sums over
    // different paddings and chunk shapes); another dropout draw or one changed text moves them far more (checked below).
    private const double LossTolerance = 1e-5, GradientTolerance = 1e-5, LearningRate = 1e-3;
    private readonly string dir = TestPaths.NewTempDir("gradcache");
    private readonly ITestOutputHelper output;

    public GradientCacheEquivalenceTests(ITestOutputHelper output) => this.output = output;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    public enum LossKind { Contrastive, ContrastiveAndKLDistill, StableDistill }

    private static RetrievalLossOptions LossOptions(LossKind kind) => kind switch
    {
        LossKind.Contrastive => new() { ContrastiveWeight = 1.0, CosTemperature = 0.02 },
        LossKind.ContrastiveAndKLDistill => new() { ContrastiveWeight = 0.2, DistillWeight = 1.0, CosTemperature = 0.02, StudentTemperature = 0.05 },
        _ => new() { ContrastiveWeight = 0.2, DistillWeight = 1.0, StableDistill = true, CosTemperature = 0.02 },
    };

    /// <summary>
    /// A retriever on the tiny Chinese BERT (2 layers), queries up to 24 tokens and keys up to 48. Mean pooling: with CLS
    /// pooling a random model embeds every text as nearly the same vector, so the in-batch gradient is what is left of
    /// an almost complete cancellation (the keys' score gradients sum to zero per query) and float rounding of different
    /// paddings shows in it at 1e-3; mean pooling embeds texts apart, as a trained model does.
    /// </summary>
    private static DenseRetriever Retriever(string model, int? miniBatchSize, bool checkpointing = false, ScalarType dtype = ScalarType.Float32) =>
        new(SentenceEncoder.Load(model, new EncoderSpec { QueryMaxLength = 24, KeyMaxLength = 48, Pooling = PoolingMethod.Mean }), keyEncoder: null,
            new RetrieverOptions { MiniBatchSize = miniBatchSize, GradientCheckpointing = checkpointing, ComputeDtype = dtype });

    /// <summary>The same model without dropout twice, in training mode: one retriever with the plain step, one with caching.</summary>
    private (DenseRetriever Plain, DenseRetriever Cached) PlainAndCached()
    {
        var model = CliProcess.TinyChineseModel(dir, layers: 2, dropout: 0.0);
        var plain = Retriever(model, miniBatchSize: null);
        var cached = Retriever(model, MiniBatch);
        plain.Train(true);
        cached.Train(true);
        return (plain, cached);
    }

    /// <summary>16 queries and 128 keys from 2 to 60 characters (many cut at the max length), teacher scores for distillation.</summary>
    private static RetrievalBatch MakeBatch(DenseRetriever retriever, LossKind kind, int seed = 3, int? changedKey = null)
    {
        var random = new Random(seed);
        const string characters = "北京上海长江熊猫茶叶长城火锅丝绸围棋京剧西湖黄河的历史很悠久每年吸引游客是中国象征之一有许多趣故事";
        string Text(int min, int max) => new(Enumerable.Range(0, random.Next(min, max)).Select(_ => characters[random.Next(characters.Length)]).ToArray());
        var queries = Enumerable.Range(0, Batch).Select(_ => Text(2, 30)).ToList();
        var keys = Enumerable.Range(0, Batch * Group).Select(_ => Text(2, 60)).ToList();
        if (changedKey is { } changed) keys[changed] = "完全不同的一段文字";
        float[]? teacher = kind == LossKind.Contrastive ? null
            : Enumerable.Range(0, Batch * Group).Select(i => i % Group == 0 ? 0.9f : (float)random.NextDouble() * 0.6f).ToArray();
        return retriever.Tokenize(queries, keys, teacher, LossOptions(kind));
    }

    /// <summary>Every fp32 weight's gradient after one forward and backward, by name; the loss.</summary>
    private static (double Loss, Dictionary<string, float[]> Gradients) Gradients(DenseRetriever retriever, Func<double> forwardBackward)
    {
        foreach (var (_, parameter) in retriever.Parameters) parameter.grad = null;
        double loss = forwardBackward();
        retriever.MoveGradientsToMaster();
        var gradients = retriever.Parameters.ToDictionary(p => p.Name,
            p => p.Parameter.grad is { } g ? g.data<float>().ToArray() : new float[p.Parameter.numel()]);
        foreach (var (_, parameter) in retriever.Parameters) parameter.grad = null;
        return (loss, gradients);
    }

    private static double Norm(IEnumerable<float> values) => Math.Sqrt(values.Sum(v => (double)v * v));

    private sealed record Difference(double Whole, double Worst, string Where)
    {
        public override string ToString() => $"{Whole:E2} of the whole norm, at most {Worst:E2} of one weight's ({Where})";
    }

    /// <summary>
    /// ‖a − b‖ / ‖b‖ over all weights together, and the largest of it per weight. Per weight, ‖b‖ counts as at least
    /// 1e-3 of the whole gradient's norm: the attention key biases get a gradient that is zero up to rounding (softmax
    /// ignores a shift shared by every key), which no relative comparison can hold to anything.
    /// </summary>
    private static Difference Compare(Dictionary<string, float[]> actual, Dictionary<string, float[]> expected)
    {
        double wholeNorm = Math.Sqrt(expected.Values.Sum(b => Math.Pow(Norm(b), 2)));
        double wholeDifference = 0, worst = 0;
        string where = "";
        foreach (var (name, b) in expected)
        {
            double difference = Norm(actual[name].Zip(b, (x, y) => x - y));
            wholeDifference += difference * difference;
            double relative = difference / Math.Max(Norm(b), 1e-3 * wholeNorm);
            if (relative > worst) (worst, where) = (relative, name);
        }
        return new Difference(Math.Sqrt(wholeDifference) / wholeNorm, worst, where);
    }

    /// <summary>The acceptance bound on the whole gradient, and ten times it per weight (float32 sums over different paddings reach 1e-5 there).</summary>
    private static void AssertGradientsEqual(Difference difference)
    {
        Assert.True(difference.Whole <= GradientTolerance, $"gradients differ by {difference}");
        Assert.True(difference.Worst <= 10 * GradientTolerance, $"gradients differ by {difference}");
    }

    private static void AssertLossesEqual(double expected, double actual, string what) =>
        Assert.True(Math.Abs(expected - actual) <= LossTolerance * Math.Max(1, Math.Abs(expected)), $"{what}: loss {expected:R} vs {actual:R}");

    [Theory]
    [InlineData(LossKind.Contrastive)]
    [InlineData(LossKind.ContrastiveAndKLDistill)]
    [InlineData(LossKind.StableDistill)]
    public void CachedStepHasThePlainStepsLossAndGradients(LossKind kind)
    {
        var (plain, cached) = PlainAndCached();
        using var _ = plain;
        using var __ = cached;
        var batch = MakeBatch(plain, kind);

        var expected = Gradients(plain, () => plain.ForwardBackward(batch, 1).Loss);
        var actual = Gradients(cached, () => cached.ForwardBackward(batch, 1).Loss);

        var difference = Compare(actual.Gradients, expected.Gradients);
        output.WriteLine($"{kind}: loss {expected.Loss:R} plain, {actual.Loss:R} cached; gradients differ by {difference}");
        AssertLossesEqual(expected.Loss, actual.Loss, kind.ToString());
        AssertGradientsEqual(difference);
        // The gradients are real: every layer's weights receive one.
        Assert.True(Norm(expected.Gradients["encoder.layer.1.output.dense.weight"]) > 1e-4);
        Assert.True(Norm(expected.Gradients["embeddings.word_embeddings.weight"]) > 1e-4);

        // The comparison sees a single text's part: one key of 128 changed moves the gradients far beyond the tolerance.
        var oneKeyChanged = Gradients(plain, () => plain.ForwardBackward(MakeBatch(plain, kind, changedKey: 77), 1).Loss);
        Assert.True(Compare(oneKeyChanged.Gradients, expected.Gradients).Whole > 100 * GradientTolerance);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithDropoutTheCachedStepReplaysEachChunksMasks(bool gradientCheckpointing)
    {
        var model = CliProcess.TinyChineseModel(dir, layers: 2, dropout: 0.1);
        using var cached = Retriever(model, MiniBatch, gradientCheckpointing);
        using var reference = Retriever(model, miniBatchSize: null);
        cached.Train(true);
        reference.Train(true);
        var batch = MakeBatch(cached, LossKind.ContrastiveAndKLDistill);

        var actual = Gradients(cached, () =>
        {
            manual_seed(17);
            return cached.ForwardBackward(batch, 1).Loss;
        });
        var expected = Gradients(reference, () => WholeGraphOverChunks(reference, batch, seed: 17));
        var otherMasks = Gradients(reference, () => WholeGraphOverChunks(reference, batch, seed: 18));

        var difference = Compare(actual.Gradients, expected.Gradients);
        var otherDifference = Compare(otherMasks.Gradients, expected.Gradients);
        output.WriteLine($"checkpointing {gradientCheckpointing}: loss {expected.Loss:R} whole graph, {actual.Loss:R} cached, " +
                         $"{otherMasks.Loss:R} other masks; gradients differ by {difference}; other masks by {otherDifference}");
        AssertLossesEqual(expected.Loss, actual.Loss, "same masks");
        AssertGradientsEqual(difference);
        // Dropout matters at this tolerance: other masks give another loss and other gradients.
        Assert.True(Math.Abs(otherMasks.Loss - expected.Loss) > 100 * LossTolerance);
        Assert.True(otherDifference.Whole > 100 * GradientTolerance);
    }

    /// <summary>
    /// The loss through the cached step's chunks (same order, same generator) embedded with their graphs kept, all
    /// at once, and one backward through everything: what the cache computes in pieces.
    /// </summary>
    private static double WholeGraphOverChunks(DenseRetriever retriever, RetrievalBatch batch, long seed)
    {
        using var scope = NewDisposeScope();
        manual_seed(seed);
        Tensor InBatchOrder(Func<LlmEmbedder.Tokenization.TokenBatch, Tensor> embed, LlmEmbedder.Tokenization.TokenBatch texts)
        {
            var chunks = GradientCache.ChunksByLength(texts, MiniBatch);
            var embedded = cat(chunks.Select(rows => embed(texts.Rows(rows))).ToArray(), dim: 0);
            var order = chunks.SelectMany(rows => rows).ToArray();
            var positions = new long[order.Length];
            for (int i = 0; i < order.Length; i++) positions[order[i]] = i;
            return embedded.index_select(0, tensor(positions));
        }
        var queries = InBatchOrder(retriever.EmbedQueries, batch.Queries);
        var keys = InBatchOrder(retriever.EmbedKeys, batch.Keys);
        var loss = retriever.Loss(batch, queries, keys);
        loss.backward();
        return loss.item<float>();
    }

    [Theory]
    [InlineData(LossKind.ContrastiveAndKLDistill)]
    [InlineData(LossKind.StableDistill)]
    public void ThreeCachedStepsLeaveTheWeightsOfThreePlainSteps(LossKind kind)
    {
        var (plain, cached) = PlainAndCached();
        using var _ = plain;
        using var __ = cached;
        var options = new TrainingStepOptions { LearningRate = LearningRate, MaxGradNorm = 1.0 };
        using var plainStep = new TrainingStep(plain, options);
        using var cachedStep = new TrainingStep(cached, options);
        var start = plain.Parameters.ToDictionary(p => p.Name, p => p.Parameter.data<float>().ToArray());
        for (int step = 1; step <= 3; step++)
        {
            var batch = MakeBatch(plain, kind, seed: step);
            var expected = plainStep.Run(step, [batch], LearningRate);
            var actual = cachedStep.Run(step, [batch], LearningRate);
            output.WriteLine($"step {step}: loss {expected.Loss:R} / {actual.Loss:R}, grad norm {expected.GradNorm:R} / {actual.GradNorm:R}");
            AssertLossesEqual(expected.Loss, actual.Loss, $"step {step}");
            Assert.True(Math.Abs(expected.GradNorm - actual.GradNorm) <= GradientTolerance * expected.GradNorm, $"step {step}: grad norm {expected.GradNorm:R} vs {actual.GradNorm:R}");
        }

        // Each AdamW step moves an element by up to about the learning rate; float noise in the gradients moves it by
        // far less, except where a gradient is itself rounding noise (the key biases; Adam's eps damps those).
        var plainWeights = plain.Parameters.ToDictionary(p => p.Name, p => p.Parameter.data<float>().ToArray());
        var cachedWeights = cached.Parameters.ToDictionary(p => p.Name, p => p.Parameter.data<float>().ToArray());
        var plainUpdates = plainWeights.ToDictionary(p => p.Key, p => p.Value.Zip(start[p.Key], (w, s) => w - s).ToArray());
        var cachedUpdates = cachedWeights.ToDictionary(p => p.Key, p => p.Value.Zip(start[p.Key], (w, s) => w - s).ToArray());
        var difference = Compare(cachedUpdates, plainUpdates);
        double largest = plainWeights.Max(p => p.Value.Zip(cachedWeights[p.Key], (a, b) => Math.Abs(a - b)).Max());
        output.WriteLine($"updates differ by {difference}; largest weight difference {largest:E2}");
        Assert.True(difference.Whole <= 1e-4, $"three steps moved the weights differently: {difference}");
        Assert.True(largest <= 1e-2 * LearningRate, $"a weight differs by {largest:E2} after three steps");
        Assert.True(Norm(plainUpdates["encoder.layer.0.attention.self.query.weight"]) > 1e-3, "the steps did not move the weights");
    }
}
