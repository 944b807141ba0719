using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>How token vectors become the sentence embedding, and how long inputs may be.</summary>
public sealed record EncoderSettings(PoolingMethod Pooling = PoolingMethod.Cls, bool Normalize = true, int MaxLength = 512);

/// <summary>
/// The sentence-transformers pipeline: tokenizer + BERT (Transformer) → Pooling → Normalize.
/// Owns the model's tensors.
/// </summary>
public sealed class SentenceEncoder : IDisposable
{
    public BertTokenizer Tokenizer { get; }
    public BertModel Model { get; }
    public EncoderSettings Settings { get; }
    public int Dimension => Model.Config.HiddenSize;

    public SentenceEncoder(BertTokenizer tokenizer, BertModel model, EncoderSettings settings)
    {
        if (settings.MaxLength < 2 || settings.MaxLength > model.Config.MaxPositionEmbeddings)
            throw new EmbedderException($"max length {settings.MaxLength} must be between 2 and the model's {model.Config.MaxPositionEmbeddings} positions");
        Tokenizer = tokenizer;
        Model = model;
        Settings = settings;
    }

    /// <summary>
    /// Loads a Hugging Face BERT folder or a sentence-transformers folder. Pooling and normalisation come from
    /// the folder when it says (modules.json), else from the arguments, else CLS + L2 (the BGE default).
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
        try
        {
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
            return new SentenceEncoder(tokenizer, model, settings);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Sentence embeddings [batch, hidden] of one tokenized batch; differentiable when grad is enabled.</summary>
    public Tensor Forward(TokenBatch batch) => Embed(Model, batch, Settings.Pooling, Settings.Normalize);

    /// <summary>Pooled (and optionally L2-normalised) embeddings of <paramref name="model"/>, e.g. a training copy in another dtype.</summary>
    public static Tensor Embed(BertModel model, TokenBatch batch, PoolingMethod pooling, bool normalize)
    {
        var device = model.parameters().First().device;
        var ids = tensor(batch.InputIds, [batch.BatchSize, batch.SequenceLength], device: device);
        var mask = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength], device: device);
        var pooled = Pooling.Apply(model.call(ids, mask), mask, pooling);
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

    public void Dispose() => Model.Dispose();
}
