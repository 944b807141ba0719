using TorchSharp;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>
/// The sentence-transformers pipeline: tokenizer + BERT (Transformer) → Pooling → [Dense] → Normalize.
/// Owns the model's tensors.
/// </summary>
public sealed class SentenceEncoder : IEmbeddingModel
{
    /// <summary>The reference's dense pooling weights (a bias-free Linear(d, d) saved by torch.save, key "weight").</summary>
    public const string DensePoolerFile = "dense_pooler.bin";

    public BertTokenizer Tokenizer { get; }
    public BertModel Model { get; }

    /// <summary>How this encoder turns text into vectors (pooling, normalisation, max lengths, instructions).</summary>
    public EncoderSpec Spec { get; }

    /// <summary>The projection after pooling (sentence-transformers Dense, or the reference's dense pooler), if any.</summary>
    public DenseLayer? Dense { get; private set; }

    // False when the Dense layer is borrowed from another encoder (the key side shares the query side's dense pooler).
    private bool ownsDense = true;

    public int Dimension => Dense?.OutFeatures ?? Model.Config.HiddenSize;

    public SentenceEncoder(BertTokenizer tokenizer, BertModel model, EncoderSpec spec, DenseLayer? dense = null)
    {
        spec.ValidatedFor(model.Config);
        if (dense is not null) RequireFits(dense, model.Config);
        Tokenizer = tokenizer;
        Model = model;
        Spec = spec;
        Dense = dense;
    }

    /// <summary>Loads an encoder folder as its own spec says (<see cref="ModelFolder.ReadSpec"/>).</summary>
    public static SentenceEncoder Load(string encoderDir) =>
        Load(encoderDir, ModelFolder.ReadSpec(encoderDir, BertConfig.Load(Path.Combine(encoderDir, "config.json")), out _));

    /// <summary>
    /// Loads a Hugging Face BERT folder or a sentence-transformers folder to encode as <paramref name="spec"/> says. The
    /// Dense layer comes from the folder's Dense module (modules.json), else from dense_pooler.bin (the reference's
    /// --pooling_method dense output); it is loaded whenever the folder has one, so training can check it.
    /// </summary>
    public static SentenceEncoder Load(string encoderDir, EncoderSpec spec)
    {
        if (!Directory.Exists(encoderDir)) throw new EmbedderException($"{encoderDir}: model folder not found");
        var config = BertConfig.Load(Path.Combine(encoderDir, "config.json"));
        spec.ValidatedFor(config);
        var tokenizer = BertTokenizer.FromDirectory(encoderDir);

        var model = new BertModel(config);
        DenseLayer? dense = null;
        try
        {
            dense = DenseLayer.LoadFromFolder(encoderDir);
            if (spec.Dense && dense is null)
                throw new EmbedderException($"{encoderDir}: its encoder spec has a dense pooler but the folder has neither {DensePoolerFile} nor a Dense module");
            StateDictLoader.LoadFolderInto(model, encoderDir);
            model.eval();
            var encoder = new SentenceEncoder(tokenizer, model, spec, dense);
            encoder.UseInferenceDtype(spec.Dtype);
            return encoder;
        }
        catch
        {
            dense?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>Sentence embeddings [batch, hidden] of one tokenized batch; differentiable when grad is enabled.</summary>
    public Tensor Forward(TokenBatch batch) => Embed(Model, batch, Spec.Pooling, Spec.Normalize, Dense);

    /// <summary>Pooled (then projected by <paramref name="dense"/>, then optionally L2-normalised) embeddings of
    /// <paramref name="model"/>, e.g. a training copy in another dtype.</summary>
    public static Tensor Embed(BertModel model, TokenBatch batch, PoolingMethod pooling, bool normalize, DenseLayer? dense = null) =>
        EmbedWithHiddenStates(model, batch, pooling, normalize, dense).Embeddings;

    /// <summary><see cref="Embed(BertModel, TokenBatch, PoolingMethod, bool, DenseLayer?)"/> and the last_hidden_state
    /// [batch, sequence, hidden] (fp32) it pooled.</summary>
    public static (Tensor Embeddings, Tensor HiddenStates) EmbedWithHiddenStates(BertModel model, TokenBatch batch, PoolingMethod pooling, bool normalize,
        DenseLayer? dense = null)
    {
        var device = model.parameters().First().device;
        var ids = tensor(batch.InputIds, [batch.BatchSize, batch.SequenceLength], device: device);
        var mask = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength], device: device);
        // Pooling (a sum over up to 512 tokens for mean) and what follows run in fp32 whatever the model's dtype.
        var hidden = model.call(ids, mask).to(ScalarType.Float32);
        var pooled = Pooling.Apply(hidden, mask, pooling);
        if (dense is not null) pooled = dense.call(pooled);
        return (normalize ? nn.functional.normalize(pooled, p: 2, dim: -1) : pooled, hidden);
    }

    /// <summary>Embeddings of one tokenized batch for inference: [batch × Dimension] fp32, no graph.</summary>
    public float[] Embed(TokenBatch batch)
    {
        bool wasTraining = Model.training;
        Model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var _ = inference_mode();
            return Forward(batch).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        }
        finally
        {
            if (wasTraining) Model.train();
        }
    }

    /// <summary>Converts the BERT weights for inference in <paramref name="dtype"/> (bf16 roughly doubles throughput on AVX-512 BF16 CPUs).</summary>
    private void UseInferenceDtype(InferenceDtype dtype)
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
    /// Writes an encoder folder that describes itself: the reference's Hugging Face layout (config.json,
    /// model.safetensors without the pooler, the tokenizer files, dense_pooler.bin when there is a dense pooler, as
    /// run_dense.py saves it), <paramref name="spec"/> as encoder_spec.json, and the sentence-transformers files, so
    /// SentenceTransformer(path) loads it with no conversion.
    /// </summary>
    public void Save(string directory, EncoderSpec spec)
    {
        Directory.CreateDirectory(directory);
        Model.Config.Save(Path.Combine(directory, "config.json"));
        WeightFiles.SaveSafetensors(directory, Model.state_dict());
        Tokenizer.Save(directory);
        Dense?.SaveDensePooler(Path.Combine(directory, DensePoolerFile));
        spec.Save(directory);
        SentenceTransformersFolder.Write(directory, spec, Model.Config, Dense);
    }

    public void Dispose()
    {
        if (ownsDense) Dense?.Dispose();
        Model.Dispose();
    }
}
