using System.Diagnostics;
using LlmEmbedder.Distributed;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using LlmEmbedder.Training.Losses;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>
/// How a <see cref="DenseRetriever"/> trains, beyond what its encoders' spec says (pooling and max lengths come from
/// <see cref="SentenceEncoder.Spec"/>, so training embeds exactly as the saved model will).
/// </summary>
public sealed record RetrieverOptions
{
    public TruncationSide TruncationSide { get; init; } = TruncationSide.Right;

    /// <summary>With several processes, every rank's loss runs over the global batch (the other ranks' keys as negatives).</summary>
    public bool NegativeCrossDevice { get; init; } = true;

    /// <summary>Float32, or BFloat16 compute copies of the fp32 weights (<see cref="MixedPrecisionModel"/>).</summary>
    public ScalarType ComputeDtype { get; init; } = ScalarType.Float32;

    /// <summary>Each BERT layer recomputed in backward instead of keeping its activations.</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>
    /// Gradient caching (<see cref="GradientCache"/>): texts are embedded in chunks of this many, so one chunk's
    /// activations are held at a time instead of the whole batch's; null: one forward over the whole batch.
    /// </summary>
    public int? MiniBatchSize { get; init; }
}

/// <summary>What one micro-batch's forward and backward gave: its loss (as scaled for the step) and their wall times.</summary>
public sealed record MicroBatchPass(double Loss, TimeSpan Forward, TimeSpan Backward);

/// <summary>
/// One (micro-)batch, tokenized: B queries, their B·G keys flattened as [q0_pos, q0_negs…, q1_pos, …], the teacher's
/// scores of those keys in the same order when the data has them, and the loss of the dataset the batch came from.
/// </summary>
public sealed record RetrievalBatch(TokenBatch Queries, TokenBatch Keys, float[]? TeacherScores, RetrievalLossOptions Loss)
{
    public int GroupSize => Keys.BatchSize / Queries.BatchSize;
}

/// <summary>
/// What run_dense trains (the reference's dense retriever): a query encoder, a key encoder (none when the two are tied:
/// the query encoder encodes both), the dense pooler both sides share, the compute copies they run in, and the
/// retrieval loss of a batch. Owns the encoders it is given. <see cref="TrainingStep"/> updates it.
/// </summary>
public sealed class DenseRetriever : IDisposable
{
    private readonly RetrieverOptions options;
    private readonly MixedPrecisionModel queryCompute;
    private readonly MixedPrecisionModel? keyCompute;
    private readonly BertTokenizer queryTokenizer;
    private readonly BertTokenizer keyTokenizer;

    /// <param name="queryEncoder">Its dense pooler, if any, becomes the key side's too.</param>
    /// <param name="keyEncoder">Null: tied encoders.</param>
    /// <param name="processGroup">The ranks whose embeddings the loss gathers (negative_cross_device); null = one process.</param>
    public DenseRetriever(SentenceEncoder queryEncoder, SentenceEncoder? keyEncoder, RetrieverOptions options, IProcessGroup? processGroup = null)
    {
        if (queryEncoder.Dense is { IsDensePooler: false })
            throw new ArgumentException("the query encoder's Dense layer is not a dense pooler (square, bias-free)", nameof(queryEncoder));
        QueryEncoder = queryEncoder;
        KeyEncoder = keyEncoder;
        this.options = options;
        ProcessGroup = processGroup ?? new SingleProcess();
        // One dense pooler for both sides, as in the reference (it belongs to the retriever, not to an encoder).
        if (DensePooler is { } pooler) keyEncoder?.SetDense(pooler, owned: false);

        Parameters = queryEncoder.Model.named_parameters()
            .Concat(keyEncoder?.Model.named_parameters() ?? [])
            .Concat(DensePooler?.named_parameters().Select(p => (name: "dense_pooler." + p.name, p.parameter)) ?? [])
            .Select(p => (p.name, p.parameter)).ToList();
        queryCompute = new MixedPrecisionModel(queryEncoder.Model, options.ComputeDtype);
        keyCompute = keyEncoder is null ? null : new MixedPrecisionModel(keyEncoder.Model, options.ComputeDtype);
        queryCompute.Compute.GradientCheckpointing = options.GradientCheckpointing;
        if (keyCompute is not null) keyCompute.Compute.GradientCheckpointing = options.GradientCheckpointing;
        var side = options.TruncationSide;
        queryTokenizer = queryEncoder.Tokenizer.WithTruncationSide(side);
        keyTokenizer = KeySide.Tokenizer.WithTruncationSide(side);
    }

    public SentenceEncoder QueryEncoder { get; }

    /// <summary>Null when tied.</summary>
    public SentenceEncoder? KeyEncoder { get; }

    /// <summary>The encoder that embeds keys: the key encoder, or the query encoder when tied.</summary>
    public SentenceEncoder KeySide => KeyEncoder ?? QueryEncoder;

    public DenseLayer? DensePooler => QueryEncoder.Dense;

    public IProcessGroup ProcessGroup { get; }

    /// <summary>The trainable fp32 weights, named for AdamW's decay groups: query model, key model, dense pooler.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>Texts as the encoders read them: cut at the spec's query and key lengths, on the configured side.</summary>
    public RetrievalBatch Tokenize(IReadOnlyList<string> queries, IReadOnlyList<string> keys, float[]? teacherScores, RetrievalLossOptions loss) =>
        new(queryTokenizer.EncodeBatch(queries, QueryEncoder.Spec.QueryMaxLength), keyTokenizer.EncodeBatch(keys, KeySide.Spec.KeyMaxLength), teacherScores, loss);

    /// <summary>Query embeddings [B, D] in fp32, before normalisation (the loss normalises for cos itself, in fp32).</summary>
    public Tensor EmbedQueries(TokenBatch queries) =>
        SentenceEncoder.Embed(queryCompute.Compute, queries, QueryEncoder.Spec.Pooling, normalize: false, QueryEncoder.Dense).to(ScalarType.Float32);

    /// <summary>Key embeddings [N, D] in fp32, before normalisation.</summary>
    public Tensor EmbedKeys(TokenBatch keys) =>
        SentenceEncoder.Embed((keyCompute ?? queryCompute).Compute, keys, KeySide.Spec.Pooling, normalize: false, KeySide.Dense).to(ScalarType.Float32);

    /// <summary>
    /// The loss of one (micro-)batch: its queries against all its keys (with negative_cross_device and several processes,
    /// against every rank's). Differentiable; the tensors it makes belong to the caller's dispose scope.
    /// </summary>
    public Tensor Loss(RetrievalBatch batch) => Loss(batch, EmbedQueries(batch.Queries), EmbedKeys(batch.Keys));

    /// <summary>
    /// The loss of <paramref name="batch"/> given its embeddings (queries [B, D], keys [B·G, D] in the batch's order): a
    /// function of the embeddings alone, which is what lets <see cref="GradientCache"/> take its gradient with respect to
    /// them. With negative_cross_device and several processes, the embeddings are gathered from every rank here.
    /// </summary>
    public Tensor Loss(RetrievalBatch batch, Tensor queries, Tensor keys)
    {
        Tensor? teacher = batch.TeacherScores is { } scores ? tensor(scores, [batch.Queries.BatchSize, batch.GroupSize]) : null;
        // negative_cross_device: every rank's loss is over the global batch; the gradient reaches this rank's encoder
        // through its own shard (CrossDeviceBatch).
        var global = options.NegativeCrossDevice && ProcessGroup.WorldSize > 1
            ? CrossDeviceBatch.FromShards(ProcessGroup.Rank, queries, keys, teacher,
                ProcessGroup.AllGather(queries), ProcessGroup.AllGather(keys), teacher is null ? null : ProcessGroup.AllGather(teacher))
            : null;
        return new RetrievalLoss(batch.Loss).Compute(queries, keys, teacher, global);
    }

    /// <summary>
    /// Forward and backward of one micro-batch: the gradients of loss / <paramref name="lossDivisor"/> accumulate in the
    /// compute copies (<see cref="MoveGradientsToMaster"/> hands them over). With <see cref="RetrieverOptions.MiniBatchSize"/>
    /// through the <see cref="GradientCache"/>, else in one pass over the batch.
    /// </summary>
    public MicroBatchPass ForwardBackward(RetrievalBatch batch, int lossDivisor)
    {
        if (options.MiniBatchSize is { } chunkSize) return GradientCache.ForwardBackward(this, batch, chunkSize, lossDivisor);
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        Tensor loss;
        // Our handles on the forward's intermediates go before backward: the graph keeps what backward needs and
        // frees it layer by layer as backward passes, as PyTorch does when Python drops its locals.
        using (NewDisposeScope())
            loss = (Loss(batch) / lossDivisor).MoveToOuterDisposeScope();
        var forward = clock.Elapsed;
        clock.Restart();
        loss.backward();
        return new MicroBatchPass(loss.item<float>(), forward, clock.Elapsed);
    }

    /// <summary>Dropout on (training) or off; an evaluator may switch the encoders off in between.</summary>
    public void Train(bool on)
    {
        queryCompute.Train(on);
        keyCompute?.Train(on);
    }

    /// <summary>Hands the compute copies' gradients to the fp32 weights (<see cref="Parameters"/>).</summary>
    internal void MoveGradientsToMaster()
    {
        queryCompute.MoveGradientsToMaster();
        keyCompute?.MoveGradientsToMaster();
    }

    /// <summary>Refreshes the compute copies from the fp32 weights (after they changed).</summary>
    internal void SyncFromMaster()
    {
        queryCompute.SyncFromMaster();
        keyCompute?.SyncFromMaster();
    }

    public void Dispose()
    {
        keyCompute?.Dispose();
        queryCompute.Dispose();
        KeyEncoder?.Dispose();
        QueryEncoder.Dispose();
    }
}
