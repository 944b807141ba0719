using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using static TorchSharp.torch;

namespace LlmEmbedder.Merging;

/// <summary>
/// Models of one architecture and vocabulary, loaded to be averaged parameter by parameter (LM-Cocktail's
/// <c>mix_models</c>): merged = Σ wᵢ·θᵢ, in float32, model by model in the order given. The merged model encodes as the
/// first model's encoder spec says and keeps its tokenizer and config. Owns every tensor it holds: one fp32 copy of each
/// model's weights, plus the encoder(s) the merged weights are written into.
/// </summary>
public sealed class ModelMerge : IDisposable
{
    /// <summary>Written beside the merged model: the inputs, the weights and, with a weight search, what it measured.</summary>
    public const string RecordFile = "merge.json";

    /// <summary>How far from 1 the weights of a fixed merge may sum (LM-Cocktail's tolerance).</summary>
    public const double WeightSumTolerance = 1e-3;

    private readonly IReadOnlyList<ModelSides> sources;
    private readonly SentenceEncoder queryTarget;
    private readonly SentenceEncoder? keyTarget;

    private ModelMerge(IReadOnlyList<string> modelDirs, ModelFolder first, IReadOnlyList<ModelSides> sources, SentenceEncoder queryTarget, SentenceEncoder? keyTarget)
    {
        ModelDirs = modelDirs;
        First = first;
        this.sources = sources;
        this.queryTarget = queryTarget;
        this.keyTarget = keyTarget;
    }

    /// <summary>The encoder folders as given, in merge order.</summary>
    public IReadOnlyList<string> ModelDirs { get; }

    /// <summary>The first model: its spec, tokenizer and config become the merged model's.</summary>
    public ModelFolder First { get; }

    public int Count => sources.Count;

    /// <summary>The merged query encoder (after <see cref="Apply"/>); it also encodes keys when the models are tied.</summary>
    public SentenceEncoder QueryEncoder => queryTarget;

    public SentenceEncoder KeyEncoder => keyTarget ?? queryTarget;

    /// <summary>
    /// Loads every model (each a folder <see cref="ModelFolder.Open"/> accepts) and checks that they can be averaged:
    /// all tied or all untied, the same vocabulary, the same parameters with the same shapes (the dense pooler too).
    /// </summary>
    public static ModelMerge Open(IReadOnlyList<string> modelDirs)
    {
        if (modelDirs.Count < 2) throw new EmbedderException($"merge needs at least two models, got {modelDirs.Count}");
        var folders = modelDirs.Select(ModelFolder.Open).ToList();
        for (int i = 1; i < folders.Count; i++)
            if (folders[i].Tied != folders[0].Tied)
                throw new EmbedderException($"{modelDirs[i]}: {TiedDescription(folders[i])}, but {modelDirs[0]} {TiedDescription(folders[0])}; " +
                    "only models with the same encoders can be merged");

        var roles = folders[0].Tied ? [EmbeddingRole.Query] : new[] { EmbeddingRole.Query, EmbeddingRole.Key };
        var sources = new List<ModelSides>();
        var targets = new List<SentenceEncoder>();
        try
        {
            for (int i = 0; i < folders.Count; i++)
            {
                var sides = new List<SideWeights>();
                foreach (var role in roles)
                {
                    var encoderDir = folders[i].EncoderDir(role);
                    // fp32 whatever the spec's inference dtype: the average is taken, and saved, in float32.
                    var encoder = SentenceEncoder.Load(encoderDir, folders[i].Spec with { Dtype = InferenceDtype.Float32 });
                    try
                    {
                        var side = SideWeights.CopyOf(encoderDir, encoder);
                        sides.Add(side);
                        if (i > 0) CheckCompatible(sources[0].Sides[sides.Count - 1], side, encoder, targets[sides.Count - 1]);
                    }
                    finally
                    {
                        if (i == 0) targets.Add(encoder); else encoder.Dispose();
                    }
                }
                sources.Add(new ModelSides(sides));
            }
            return new ModelMerge(modelDirs, folders[0], sources, targets[0], targets.Count > 1 ? targets[1] : null);
        }
        catch
        {
            foreach (var source in sources) source.Dispose();
            foreach (var target in targets) target.Dispose();
            throw;
        }
    }

    /// <summary>Rejects weights a fixed merge cannot use: one per model, each finite and ≥ 0, summing to 1.</summary>
    public static void CheckWeights(IReadOnlyList<double> weights, int modelCount)
    {
        if (weights.Count != modelCount)
            throw new EmbedderException($"--weights has {weights.Count} values for {modelCount} models; give one weight per model (or auto)");
        foreach (var weight in weights)
            if (!double.IsFinite(weight) || weight < 0)
                throw new EmbedderException($"--weights must be finite and >= 0, got {Format(weight)}");
        double sum = weights.Sum();
        if (Math.Abs(sum - 1) > WeightSumTolerance)
            throw new EmbedderException($"--weights must sum to 1 (a weighted average), got {Format(sum)}");
    }

    /// <summary>
    /// Writes Σ wᵢ·θᵢ into the merged encoder(s), for every parameter of the BERT and of the dense pooler:
    /// w₀·θ₀, then + wᵢ·θᵢ for i = 1, 2, …, each product and sum rounded to float32 (no fused multiply-add), so the
    /// result is reproducible with NumPy in float32.
    /// </summary>
    public void Apply(IReadOnlyList<double> weights)
    {
        if (weights.Count != Count) throw new ArgumentException($"{weights.Count} weights for {Count} models", nameof(weights));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int side = 0; side < sources[0].Sides.Count; side++)
        {
            var target = side == 0 ? queryTarget : keyTarget!;
            var destination = TargetTensors(target);
            foreach (var (name, tensor) in destination)
            {
                if (!tensor.is_floating_point())
                {
                    tensor.copy_(sources[0].Sides[side].Tensors[name]);
                    continue;
                }
                var sum = sources[0].Sides[side].Tensors[name].mul(weights[0]);
                for (int i = 1; i < Count; i++) sum = sum.add(sources[i].Sides[side].Tensors[name].mul(weights[i]));
                tensor.copy_(sum);
            }
        }
    }

    /// <summary>
    /// Writes the merged model (after <see cref="Apply"/>) into <paramref name="outputDir"/>, replacing it whole: one
    /// encoder folder as training writes it (config, model.safetensors, tokenizer, dense pooler, encoder_spec.json,
    /// the sentence-transformers files) at its root, or query_encoder/ and key_encoder/ for untied models; and
    /// <see cref="RecordFile"/>.
    /// </summary>
    public void Save(string outputDir, IReadOnlyList<double> weights, JsonObject? search = null)
    {
        var record = new JsonObject
        {
            ["models"] = new JsonArray(ModelDirs.Select(d => (JsonNode)Path.GetFullPath(d)).ToArray()),
            ["weights"] = new JsonArray(weights.Select(w => (JsonNode)w).ToArray()),
            ["spec_from"] = First.SpecSource,
            ["search"] = search,
        };
        AtomicFolder.Publish(outputDir, staging =>
        {
            if (keyTarget is null)
            {
                queryTarget.Save(staging, First.Spec);
            }
            else
            {
                queryTarget.Save(Path.Combine(staging, ModelFolder.QueryEncoderFolder), First.Spec);
                keyTarget.Save(Path.Combine(staging, ModelFolder.KeyEncoderFolder), First.Spec);
            }
            FileUtil.WriteAllTextAtomic(Path.Combine(staging, RecordFile), record.ToJsonString(JsonFormatting.TwoSpaces) + "\n");
        });
    }

    public static string Format(double weight) => weight.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        foreach (var source in sources) source.Dispose();
        queryTarget.Dispose();
        keyTarget?.Dispose();
    }

    private static string TiedDescription(ModelFolder folder) =>
        folder.Tied ? "has one encoder for queries and keys" : $"has untied {ModelFolder.QueryEncoderFolder}/ and {ModelFolder.KeyEncoderFolder}/";

    /// <summary>The merged encoder's parameters and buffers by name: the BERT's as saved, the dense pooler's as "dense.*".</summary>
    private static Dictionary<string, Tensor> TargetTensors(SentenceEncoder encoder)
    {
        var tensors = new Dictionary<string, Tensor>(encoder.Model.state_dict());
        if (encoder.Dense is { } dense)
            foreach (var (name, tensor) in dense.state_dict()) tensors[SideWeights.DensePrefix + name] = tensor;
        return tensors;
    }

    private static void CheckCompatible(SideWeights first, SideWeights other, SentenceEncoder otherEncoder, SentenceEncoder firstEncoder)
    {
        var (a, b) = (firstEncoder.Tokenizer, otherEncoder.Tokenizer);
        if (a.VocabSize != b.VocabSize)
            throw new EmbedderException($"{other.Dir}: its vocabulary has {b.VocabSize} tokens but {first.Dir}'s has {a.VocabSize}; only models with one vocabulary can be merged");
        for (int id = 0; id < a.VocabSize; id++)
            if (a.IdToToken(id) != b.IdToToken(id))
                throw new EmbedderException($"{other.Dir}: token {id} is \"{b.IdToToken(id)}\" but \"{a.IdToToken(id)}\" in {first.Dir}; only models with one vocabulary can be merged");
        if ((firstEncoder.Dense is null) != (otherEncoder.Dense is null))
            throw new EmbedderException($"{(firstEncoder.Dense is null ? other.Dir : first.Dir)} has a dense pooler and " +
                $"{(firstEncoder.Dense is null ? first.Dir : other.Dir)} has none; only models with the same layers can be merged");
        if (firstEncoder.Dense is { } d1 && otherEncoder.Dense is { } d2 && d1.Activation != d2.Activation)
            throw new EmbedderException($"{other.Dir}: its Dense layer's activation differs from {first.Dir}'s");
        foreach (var (name, tensor) in first.Tensors)
        {
            if (!other.Tensors.TryGetValue(name, out var match))
                throw new EmbedderException($"{other.Dir}: has no parameter '{name}', which {first.Dir} has; only models of one architecture can be merged");
            if (!tensor.shape.SequenceEqual(match.shape))
                throw new EmbedderException($"{other.Dir}: parameter '{name}' has shape [{string.Join(", ", match.shape)}] but [{string.Join(", ", tensor.shape)}] " +
                    $"in {first.Dir}; only models of one architecture can be merged");
        }
        if (other.Tensors.Keys.FirstOrDefault(k => !first.Tensors.ContainsKey(k)) is { } extra)
            throw new EmbedderException($"{other.Dir}: has a parameter '{extra}' that {first.Dir} lacks; only models of one architecture can be merged");
    }

    /// <summary>One encoder's weights, copied in fp32: the BERT's state dict and the dense pooler's (as "dense.*").</summary>
    private sealed record SideWeights(string Dir, IReadOnlyDictionary<string, Tensor> Tensors) : IDisposable
    {
        public const string DensePrefix = "dense.";

        public static SideWeights CopyOf(string dir, SentenceEncoder encoder)
        {
            var tensors = new Dictionary<string, Tensor>();
            foreach (var (name, tensor) in TargetTensors(encoder))
            {
                using var detached = tensor.detach();
                tensors[name] = detached.clone();
            }
            return new SideWeights(dir, tensors);
        }

        public void Dispose()
        {
            foreach (var tensor in Tensors.Values) tensor.Dispose();
        }
    }

    private sealed record ModelSides(IReadOnlyList<SideWeights> Sides) : IDisposable
    {
        public void Dispose()
        {
            foreach (var side in Sides) side.Dispose();
        }
    }
}
