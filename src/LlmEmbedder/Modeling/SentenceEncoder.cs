using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

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
    public DenseLayer? Dense { get; }

    public int Dimension => Dense?.OutFeatures ?? Model.Config.HiddenSize;

    public SentenceEncoder(BertTokenizer tokenizer, BertModel model, EncoderSettings settings, DenseLayer? dense = null)
    {
        if (settings.MaxLength < 2 || settings.MaxLength > model.Config.MaxPositionEmbeddings)
            throw new EmbedderException($"max length {settings.MaxLength} must be between 2 and the model's {model.Config.MaxPositionEmbeddings} positions");
        if (dense is not null && dense.InFeatures != model.Config.HiddenSize)
            throw new EmbedderException($"the Dense layer takes {dense.InFeatures} features but the model's hidden size is {model.Config.HiddenSize}");
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
        var pooled = Pooling.Apply(model.call(ids, mask), mask, pooling);
        if (dense is not null) pooled = dense.Apply(pooled);
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

    /// <summary>Writes a plain Hugging Face BERT folder: config.json, model.safetensors (no pooler) and the tokenizer files.</summary>
    public void SaveHuggingFace(string directory)
    {
        Directory.CreateDirectory(directory);
        Model.Config.Save(Path.Combine(directory, "config.json"));
        WeightFiles.SaveSafetensors(directory, Model.state_dict());
        Tokenizer.Save(directory);
    }

    public void Dispose()
    {
        Dense?.Dispose();
        Model.Dispose();
    }
}

/// <summary>y = activation(x·Wᵀ + b) after pooling: sentence-transformers' Dense module, or the reference's dense pooler.</summary>
public sealed class DenseLayer : IDisposable
{
    /// <summary>[out, in], float32.</summary>
    public Tensor Weight { get; }
    public Tensor? Bias { get; }
    public DenseActivation Activation { get; }
    public int InFeatures => (int)Weight.shape[1];
    public int OutFeatures => (int)Weight.shape[0];

    public DenseLayer(Tensor weight, Tensor? bias = null, DenseActivation activation = DenseActivation.Identity)
    {
        if (weight.dim() != 2) throw new EmbedderException($"a Dense weight must be a matrix [out, in], got shape [{string.Join(", ", weight.shape)}]");
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.shape[0]))
            throw new EmbedderException($"a Dense bias must have {weight.shape[0]} values, got shape [{string.Join(", ", bias.shape)}]");
        Weight = weight.to(ScalarType.Float32).detach().DetachFromDisposeScope();
        Bias = bias?.to(ScalarType.Float32).detach().DetachFromDisposeScope();
        Activation = activation;
    }

    /// <summary>The reference's dense_pooler.bin: {"weight": [d, d]}, no bias.</summary>
    public static DenseLayer LoadDensePooler(string path)
    {
        var tensors = WeightFiles.LoadFile(path);
        try
        {
            if (tensors.Count != 1 || !tensors.TryGetValue("weight", out var weight))
                throw new EmbedderException($"{path}: expected one tensor \"weight\" (a bias-free Linear), found [{string.Join(", ", tensors.Keys)}]");
            return new DenseLayer(weight);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>A sentence-transformers Dense module folder ("linear.weight", "linear.bias").</summary>
    public static DenseLayer Load(DenseModuleConfig config)
    {
        var tensors = WeightFiles.Load(config.Directory);
        try
        {
            if (!tensors.TryGetValue("linear.weight", out var weight))
                throw new EmbedderException($"{config.Directory}: the Dense weights have no \"linear.weight\" (found [{string.Join(", ", tensors.Keys)}])");
            if (weight.dim() != 2 || weight.shape[0] != config.OutFeatures || weight.shape[1] != config.InFeatures)
                throw new EmbedderException($"{config.Directory}: linear.weight has shape [{string.Join(", ", weight.shape)}], config.json says [{config.OutFeatures}, {config.InFeatures}]");
            Tensor? bias = null;
            if (config.Bias && !tensors.TryGetValue("linear.bias", out bias))
                throw new EmbedderException($"{config.Directory}: config.json says bias but the weights have no \"linear.bias\"");
            return new DenseLayer(weight, bias, config.Activation);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    public Tensor Apply(Tensor pooled)
    {
        var weight = Weight.to(pooled.dtype, pooled.device);
        var projected = Bias is null ? pooled.matmul(weight.t()) : nn.functional.linear(pooled, weight, Bias.to(pooled.dtype, pooled.device));
        return Activation == DenseActivation.Tanh ? projected.tanh() : projected;
    }

    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }
}
