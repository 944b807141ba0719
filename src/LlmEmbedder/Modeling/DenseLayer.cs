using System.IO.Compression;
using LlmEmbedder.Checkpoints;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace LlmEmbedder.Modeling;

/// <summary>
/// y = activation(x·Wᵀ + b) after pooling: sentence-transformers' Dense module, or the reference's dense pooler
/// (a bias-free Linear(d, d), trainable with --pooling_method dense). The parameters are named "weight" and "bias",
/// so <c>state_dict()</c> is what torch.nn.Linear's would be.
/// </summary>
public sealed class DenseLayer : Module<Tensor, Tensor>
{
    // Field names are the state-dict keys (RegisterComponents).
    private readonly Parameter weight;
    private readonly Parameter? bias;

    /// <summary>[out, in], float32.</summary>
    public Tensor Weight => weight;
    public Tensor? Bias => bias;
    public DenseActivation Activation { get; }
    public int InFeatures => (int)weight.shape[1];
    public int OutFeatures => (int)weight.shape[0];

    /// <summary>True for the shape the reference trains and saves as dense_pooler.bin: square, no bias, no activation.</summary>
    public bool IsDensePooler => bias is null && Activation == DenseActivation.Identity && InFeatures == OutFeatures;

    public DenseLayer(Tensor weight, Tensor? bias = null, DenseActivation activation = DenseActivation.Identity) : base(nameof(DenseLayer))
    {
        if (weight.dim() != 2) throw new EmbedderException($"a Dense weight must be a matrix [out, in], got shape [{string.Join(", ", weight.shape)}]");
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.shape[0]))
            throw new EmbedderException($"a Dense bias must have {weight.shape[0]} values, got shape [{string.Join(", ", bias.shape)}]");
        this.weight = new Parameter(weight.to(ScalarType.Float32).detach().clone().DetachFromDisposeScope());
        this.bias = bias is null ? null : new Parameter(bias.to(ScalarType.Float32).detach().clone().DetachFromDisposeScope());
        Activation = activation;
        RegisterComponents();
    }

    /// <summary>A fresh dense pooler initialised as torch.nn.Linear is: U(-1/√d, 1/√d).</summary>
    public static DenseLayer CreateDensePooler(int dimension, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        double bound = 1.0 / Math.Sqrt(dimension);
        return new DenseLayer(empty(dimension, dimension).uniform_(-bound, bound, generator));
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

    /// <summary>Writes dense_pooler.bin as run_dense.py does: torch.save of the Linear's state dict, so PyTorch loads it.</summary>
    public void SaveDensePooler(string path)
    {
        if (!IsDensePooler)
            throw new EmbedderException($"{path}: only a square, bias-free, identity Dense can be saved as the reference's dense pooler " +
                                        $"(this one is [{OutFeatures}, {InFeatures}]{(bias is null ? "" : " with bias")}, {Activation})");
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor> { ["weight"] = weight.detach().cpu().contiguous() };
        var pickled = new MemoryStream();
        PyTorchPickler.PickleStateDict(pickled, state);   // closes the stream; ToArray still works
        using var zip = new MemoryStream(pickled.ToArray());
        FileUtil.WriteAtomic(path, stream => StoreUncompressed(zip, stream));
    }

    /// <summary>
    /// Rewrites PyBridge's deflated zip with stored entries, as torch.save writes them: torch.load reads either, but
    /// torch.load(mmap=True) maps the tensor bytes straight from the file, which only works when they are not compressed.
    /// </summary>
    private static void StoreUncompressed(Stream zip, Stream destination)
    {
        using var source = new ZipArchive(zip, ZipArchiveMode.Read, leaveOpen: true);
        using var target = new ZipArchive(destination, ZipArchiveMode.Create, leaveOpen: true);
        foreach (var entry in source.Entries)
        {
            using var from = entry.Open();
            using var to = target.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
            from.CopyTo(to);
        }
    }

    /// <summary>
    /// The projection after pooling that an encoder folder holds, or null: its sentence-transformers Dense module
    /// (modules.json), else the reference's dense_pooler.bin.
    /// </summary>
    public static DenseLayer? LoadFromFolder(string encoderDir)
    {
        if (SentenceTransformersFolder.TryRead(encoderDir)?.Dense is { } module) return Load(module);
        var densePooler = Path.Combine(encoderDir, SentenceEncoder.DensePoolerFile);
        return File.Exists(densePooler) ? LoadDensePooler(densePooler) : null;
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

    /// <summary>
    /// Projects pooled vectors. The fp32 weights are cast to the input's dtype on the fly (as autocast does), so
    /// under bf16 compute the gradient still reaches the fp32 parameters.
    /// </summary>
    public override Tensor forward(Tensor pooled)
    {
        var projected = functional.linear(pooled, weight.to(pooled.dtype, pooled.device), bias?.to(pooled.dtype, pooled.device));
        return Activation == DenseActivation.Tanh ? projected.tanh() : projected;
    }
}
