using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints;

/// <summary>What loading a checkpoint into a module did with each name. Keys are the module's names.</summary>
/// <param name="Missing">The module's parameters and buffers that the checkpoint lacks; they keep their values.</param>
/// <param name="Unexpected">Checkpoint tensors the module has no place for.</param>
/// <param name="Ignored">Checkpoint tensors a BertModel is known not to need (pooler, prediction heads, position_ids).</param>
public sealed record LoadReport(IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Ignored);

/// <summary>
/// Copies a checkpoint's tensors into a module whose names are the Hugging Face BertModel names,
/// normalising checkpoint keys the way transformers does when it loads a BertModel.
/// </summary>
public static class StateDictLoader
{
    private const string BasePrefix = "bert.";
    private const int NamesInMessage = 5;

    /// <summary>
    /// Checkpoint names a BertModel may not have: the pooler (unused by embedders), the heads of
    /// BertForPreTraining/MaskedLM ("cls.*") and the position_ids buffer older checkpoints saved.
    /// </summary>
    private static readonly string[] IgnoredPrefixes = ["pooler.", "cls."];
    private static readonly string[] IgnoredNames = ["embeddings.position_ids"];

    /// <summary>
    /// Loads <paramref name="weights"/> into <paramref name="module"/>'s parameters and persistent buffers,
    /// converting each tensor to the dtype and device of its destination. Everything is checked before
    /// anything is copied, so on error the module is unchanged.
    /// </summary>
    /// <param name="source">Named in error messages (the checkpoint file or folder).</param>
    /// <param name="requireAll">When true, a module parameter absent from the checkpoint is an error.</param>
    /// <exception cref="EmbedderException">A tensor's shape differs from the module's, two keys normalise to one name,
    /// or <paramref name="requireAll"/> and something is missing.</exception>
    public static LoadReport LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> weights, string source, bool requireAll = false)
    {
        var destination = module.state_dict();
        var normalised = NormaliseKeys(weights.Keys, destination.Keys, source);

        var matched = new List<(string ModuleName, Tensor From, Tensor To)>();
        var unexpected = new List<string>();
        var ignored = new List<string>();
        var shapeErrors = new List<string>();
        foreach (var (checkpointKey, name) in normalised)
        {
            if (destination.TryGetValue(name, out var target))
            {
                var tensor = weights[checkpointKey];
                if (!tensor.shape.SequenceEqual(target.shape))
                    shapeErrors.Add($"weight '{name}' has shape {Format(tensor.shape)} but the model expects {Format(target.shape)}");
                else
                    matched.Add((name, tensor, target));
            }
            else if (IsKnownExtra(name))
                ignored.Add(name);
            else
                unexpected.Add(name);
        }
        if (shapeErrors.Count > 0)
            throw new EmbedderException($"{source}: {shapeErrors[0]}" + (shapeErrors.Count > 1 ? $" (and {shapeErrors.Count - 1} more weights of the wrong shape)" : ""));

        var loaded = matched.Select(m => m.ModuleName).ToHashSet();
        var missing = destination.Keys.Where(k => !loaded.Contains(k)).ToList();
        if (requireAll && missing.Count > 0)
            throw new EmbedderException($"{source}: the model's {FormatNames(missing)} not in the checkpoint");

        using (no_grad())
        {
            foreach (var (_, from, to) in matched)
                to.copy_(from);
        }
        return new LoadReport(missing, unexpected, ignored);
    }

    /// <summary>
    /// <see cref="LoadInto"/> from the weight files of a model folder (<see cref="WeightFiles.Load"/>), every module
    /// parameter required; the checkpoint's tensors are released afterwards.
    /// </summary>
    public static LoadReport LoadFolderInto(nn.Module module, string modelDir)
    {
        var weights = WeightFiles.Load(modelDir);
        try
        {
            return LoadInto(module, weights, modelDir, requireAll: true);
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// Maps each checkpoint key to a module name: "bert." is dropped when the checkpoint has it and the module
    /// does not (a BertForMaskedLM checkpoint loaded as a BertModel) and added in the opposite case; TensorFlow-era
    /// LayerNorm names gamma/beta become weight/bias.
    /// </summary>
    private static List<(string CheckpointKey, string Name)> NormaliseKeys(
        IEnumerable<string> checkpointKeys, IEnumerable<string> moduleNames, string source)
    {
        var keys = checkpointKeys.ToList();
        var names = moduleNames.ToHashSet();
        bool checkpointHasPrefix = keys.Any(k => k.StartsWith(BasePrefix, StringComparison.Ordinal));
        bool moduleHasPrefix = names.Any(n => n.StartsWith(BasePrefix, StringComparison.Ordinal));

        var result = new List<(string, string)>();
        var keyByName = new Dictionary<string, string>();
        foreach (var key in keys)
        {
            var name = key;
            if (checkpointHasPrefix && !moduleHasPrefix && name.StartsWith(BasePrefix, StringComparison.Ordinal))
                name = name[BasePrefix.Length..];
            else if (!checkpointHasPrefix && moduleHasPrefix && names.Contains(BasePrefix + name))
                name = BasePrefix + name;
            if (!names.Contains(name))
                name = RenameLegacyLayerNorm(name);
            if (!keyByName.TryAdd(name, key))
                throw new EmbedderException($"{source}: both '{keyByName[name]}' and '{key}' are weight '{name}'");
            result.Add((key, name));
        }
        return result;
    }

    private static bool IsKnownExtra(string name)
    {
        var bare = name.StartsWith(BasePrefix, StringComparison.Ordinal) ? name[BasePrefix.Length..] : name;
        return IgnoredPrefixes.Any(p => bare.StartsWith(p, StringComparison.Ordinal)) || IgnoredNames.Contains(bare);
    }

    private static string RenameLegacyLayerNorm(string name)
    {
        int leafStart = name.LastIndexOf('.') + 1;
        return name[leafStart..] switch
        {
            "gamma" => name[..leafStart] + "weight",
            "beta" => name[..leafStart] + "bias",
            _ => name,
        };
    }

    private static string Format(long[] shape) => $"[{string.Join(", ", shape)}]";

    private static string FormatNames(IReadOnlyList<string> names)
    {
        var shown = string.Join(", ", names.Take(NamesInMessage).Select(n => $"'{n}'"));
        return names.Count switch
        {
            1 => $"weight {shown} is",
            <= NamesInMessage => $"weights {shown} are",
            _ => $"weights {shown} (and {names.Count - NamesInMessage} more) are",
        };
    }
}
