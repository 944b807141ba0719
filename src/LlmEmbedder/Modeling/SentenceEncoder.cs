using TorchSharp;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>The precision the encoder's BERT runs in at inference (pooling, the Dense layer and the output stay fp32).</summary>
public enum InferenceDtype
{
    Float32,
    BFloat16,
}

/// <summary>How token vectors become the sentence embedding, and how long inputs may be.</summary>
public sealed record EncoderSettings(PoolingMethod Pooling = PoolingMethod.Cls, bool Normalize = true, int MaxLength = 512);

/// <summary>
/// The sentence-transformers pipeline: tokenizer + BERT (Transformer) → Pooling → [Dense] → Normalize.
/// Owns the model's tensors.
/// </summary>
public sealed class SentenceEncoder : IDisposable
{
    /// <summary>The reference's dense pooling weights (a bias-free Linear(d, d) saved by torch.save, key "weight").</summary>
    public const string DensePoolerFile = "dense_pooler.bin";

    public BertTokenizer Tokenizer { get; }
    public BertModel Model { get; }
    public EncoderSettings Settings { get; }

    /// <summary>The projection after pooling (sentence-transformers Dense, or the reference's dense pooler), if any.</summary>
    public DenseLayer? Dense { get; private set; }

    // False when the Dense layer is borrowed from another encoder (the key side shares the query side's dense pooler).
    private bool ownsDense = true;

    public int Dimension => Dense?.OutFeatures ?? Model.Config.HiddenSize;

    public SentenceEncoder(BertTokenizer tokenizer, BertModel model, EncoderSettings settings, DenseLayer? dense = null)
    {
        if (settings.MaxLength < 2 || settings.MaxLength > model.Config.MaxPositionEmbeddings)
            throw new EmbedderException($"max length {settings.MaxLength} must be between 2 and the model's {model.Config.MaxPositionEmbeddings} positions");
        if (dense is not null) RequireFits(dense, model.Config);
        Tokenizer = tokenizer;
        Model = model;
        Settings = settings;
        Dense = dense;
    }

    /// <summary>
    /// Loads a Hugging Face BERT folder or a sentence-transformers folder. Pooling and normalisation come from
    /// the folder when it says (modules.json), else from the arguments, else CLS + L2 (the BGE default).
    /// The Dense layer comes from the folder's Dense module, or from dense_pooler.bin in a plain folder (the
    /// reference's --pooling_method dense output).
    /// </summary>
    public static SentenceEncoder Load(string modelDir, PoolingMethod? pooling = null, bool? normalize = null, int? maxLength = null)
    {
        if (!Directory.Exists(modelDir)) throw new EmbedderException($"{modelDir}: model folder not found");
        var config = BertConfig.Load(Path.Combine(modelDir, "config.json"));
        var tokenizer = BertTokenizer.FromDirectory(modelDir);
        var folder = SentenceTransformersFolder.TryRead(modelDir);
        var settings = new EncoderSettings(
            folder?.Pooling ?? pooling ?? PoolingMethod.Cls,
            folder?.Normalize ?? normalize ?? true,
            maxLength ?? folder?.MaxSeqLength ?? Math.Min(512, config.MaxPositionEmbeddings));

        var model = new BertModel(config);
        DenseLayer? dense = null;
        try
        {
            if (folder?.Dense is { } denseModule) dense = DenseLayer.Load(denseModule);
            else if (folder is null && File.Exists(Path.Combine(modelDir, DensePoolerFile)))
                dense = DenseLayer.LoadDensePooler(Path.Combine(modelDir, DensePoolerFile));
            var weights = WeightFiles.Load(modelDir);
            try
            {
                StateDictLoader.LoadInto(model, weights, modelDir, requireAll: true);
            }
            finally
            {
                foreach (var tensor in weights.Values) tensor.Dispose();
            }
            model.eval();
            return new SentenceEncoder(tokenizer, model, settings, dense);
        }
        catch
        {
            dense?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>Sentence embeddings [batch, hidden] of one tokenized batch; differentiable when grad is enabled.</summary>
    public Tensor Forward(TokenBatch batch) => Embed(Model, batch, Settings.Pooling, Settings.Normalize, Dense);

    /// <summary>Pooled (then projected by <paramref name="dense"/>, then optionally L2-normalised) embeddings of
    /// <paramref name="model"/>, e.g. a training copy in another dtype.</summary>
    public static Tensor Embed(BertModel model, TokenBatch batch, PoolingMethod pooling, bool normalize, DenseLayer? dense = null)
    {
        var device = model.parameters().First().device;
        var ids = tensor(batch.InputIds, [batch.BatchSize, batch.SequenceLength], device: device);
        var mask = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength], device: device);
        // Pooling (a sum over up to 512 tokens for mean) and what follows run in fp32 whatever the model's dtype.
        var pooled = Pooling.Apply(model.call(ids, mask).to(ScalarType.Float32), mask, pooling);
        if (dense is not null) pooled = dense.call(pooled);
        return normalize ? nn.functional.normalize(pooled, p: 2, dim: -1) : pooled;
    }

    /// <summary>
    /// Embeds texts for inference: rows [texts.Count × Dimension] in input order. Texts are batched by
    /// token length (less padding); each batch runs in its own dispose scope.
    /// </summary>
    public float[] Encode(IReadOnlyList<string> texts, int batchSize = 32, IProgress<int>? progress = null)
    {
        if (batchSize < 1) throw new EmbedderException($"batch size must be positive, got {batchSize}");
        var lengths = texts.Select(t => Tokenizer.Encode(t, Settings.MaxLength).Length).ToArray();
        var order = Enumerable.Range(0, texts.Count).OrderByDescending(i => lengths[i]).ToArray();
        var output = new float[(long)texts.Count * Dimension];
        bool wasTraining = Model.training;
        Model.eval();
        using (inference_mode())
        {
            for (int start = 0; start < order.Length; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var rows = order.Skip(start).Take(batchSize).ToArray();
                var batch = Tokenizer.EncodeBatch(rows.Select(i => texts[i]).ToList(), Settings.MaxLength);
                var embeddings = Forward(batch).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                for (int r = 0; r < rows.Length; r++)
                    Array.Copy(embeddings, (long)r * Dimension, output, (long)rows[r] * Dimension, Dimension);
                progress?.Report(Math.Min(start + batchSize, order.Length));
            }
        }
        if (wasTraining) Model.train();
        return output;
    }

    /// <summary>Converts the BERT weights for inference in <paramref name="dtype"/> (bf16 roughly doubles throughput on AVX-512 BF16 CPUs).</summary>
    public void UseInferenceDtype(InferenceDtype dtype)
    {
        var scalarType = dtype == InferenceDtype.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        if (Model.parameters().First().dtype != scalarType) Model.to(scalarType);
    }

    /// <summary>
    /// Puts <paramref name="dense"/> after pooling in place of the current Dense layer (disposed if owned).
    /// With <paramref name="owned"/> false the caller keeps ownership: how untied encoders share one dense pooler.
    /// </summary>
    public void SetDense(DenseLayer dense, bool owned)
    {
        RequireFits(dense, Model.Config);
        if (ownsDense && !ReferenceEquals(Dense, dense)) Dense?.Dispose();
        Dense = dense;
        ownsDense = owned;
    }

    private static void RequireFits(DenseLayer dense, BertConfig config)
    {
        if (dense.InFeatures != config.HiddenSize)
            throw new EmbedderException($"the Dense layer takes {dense.InFeatures} features but the model's hidden size is {config.HiddenSize}");
    }

    /// <summary>
    /// Writes a plain Hugging Face BERT folder: config.json, model.safetensors (no pooler), the tokenizer files,
    /// and dense_pooler.bin when the encoder has a dense pooler (as run_dense.py saves it).
    /// </summary>
    public void SaveHuggingFace(string directory)
    {
        Directory.CreateDirectory(directory);
        Model.Config.Save(Path.Combine(directory, "config.json"));
        WeightFiles.SaveSafetensors(directory, Model.state_dict());
        Tokenizer.Save(directory);
        Dense?.SaveDensePooler(Path.Combine(directory, DensePoolerFile));
    }

    public void Dispose()
    {
        if (ownsDense) Dense?.Dispose();
        Model.Dispose();
    }
}
