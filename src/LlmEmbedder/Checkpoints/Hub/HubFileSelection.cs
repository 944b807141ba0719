using System.Text.Json;

namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>
/// Which files of a hub repository an embedding model needs: its config, tokenizer and one set of PyTorch weights,
/// plus the sentence-transformers module folders. ONNX, OpenVINO, TensorFlow, Flax and Rust weights are left behind.
/// </summary>
internal static class HubFileSelection
{
    public const string SafetensorsIndex = "model.safetensors.index.json";
    public const string PytorchIndex = "pytorch_model.bin.index.json";
    public const string ModulesJson = "modules.json";

    private static readonly string[] AlwaysWanted =
    [
        "config.json",
        "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        ModulesJson, "config_sentence_transformers.json", "sentence_bert_config.json",
        "dense_pooler.bin",
    ];

    // In preference order; the first the repo has is the one fetched.
    private static readonly string[] WeightChoices = ["model.safetensors", SafetensorsIndex, "pytorch_model.bin", PytorchIndex];

    private static readonly string[] ForeignWeightExtensions = [".h5", ".msgpack", ".ot", ".onnx", ".onnx_data", ".tflite", ".mlmodel"];
    private static readonly string[] ForeignWeightPrefixes = ["tf_model", "flax_model", "rust_model"];
    private static readonly string[] ForeignFolders = ["onnx", "openvino"];

    /// <summary>What can be chosen from the listing alone; indexes and modules.json are among them and name the rest.</summary>
    public static List<string> FromListing(IReadOnlySet<string> repoFiles)
    {
        var wanted = AlwaysWanted.Where(repoFiles.Contains).ToList();
        if (WeightChoices.FirstOrDefault(repoFiles.Contains) is { } weights)
            wanted.Add(weights);
        return wanted;
    }

    /// <summary>Shards named by a fetched index, and every file under a module folder named by a fetched modules.json.</summary>
    public static List<string> FromFetchedFiles(string snapshotDir, IReadOnlySet<string> repoFiles, string modelName)
    {
        var wanted = new List<string>();
        foreach (var index in new[] { SafetensorsIndex, PytorchIndex })
            if (File.Exists(Path.Combine(snapshotDir, index)))
                wanted.AddRange(ShardsOf(Path.Combine(snapshotDir, index), repoFiles, modelName, index));

        var modulesPath = Path.Combine(snapshotDir, ModulesJson);
        if (File.Exists(modulesPath))
            foreach (var folder in ModuleFolders(modulesPath, modelName))
                wanted.AddRange(FilesOfModuleFolder(folder, repoFiles));
        return wanted.Distinct(StringComparer.Ordinal).ToList();
    }

    private static IEnumerable<string> ShardsOf(string indexPath, IReadOnlySet<string> repoFiles, string modelName, string indexName)
    {
        var shards = new SortedSet<string>(StringComparer.Ordinal);
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!json.RootElement.TryGetProperty("weight_map", out var weightMap) || weightMap.ValueKind != JsonValueKind.Object)
                throw new EmbedderException($"model '{modelName}': {indexName} has no \"weight_map\" object");
            foreach (var entry in weightMap.EnumerateObject())
                if (entry.Value.GetString() is { Length: > 0 } shard)
                    shards.Add(shard);
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"model '{modelName}': {indexName} is not valid JSON ({e.Message})");
        }
        foreach (var shard in shards)
            if (!repoFiles.Contains(shard))
                throw new EmbedderException($"model '{modelName}': {indexName} names shard '{shard}', which the repository does not have");
        return shards;
    }

    private static IEnumerable<string> ModuleFolders(string modulesPath, string modelName)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(modulesPath));
            if (json.RootElement.ValueKind != JsonValueKind.Array)
                throw new EmbedderException($"model '{modelName}': {ModulesJson} is not a JSON array");
            return json.RootElement.EnumerateArray()
                .Select(module => module.TryGetProperty("path", out var path) ? path.GetString() : null)
                .Select(path => path?.Trim('/') ?? "")
                .Where(path => path.Length > 0)
                .ToList();
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"model '{modelName}': {ModulesJson} is not valid JSON ({e.Message})");
        }
    }

    private static IEnumerable<string> FilesOfModuleFolder(string folder, IReadOnlySet<string> repoFiles)
    {
        var inFolder = repoFiles.Where(file => file.StartsWith(folder + "/", StringComparison.Ordinal) && !IsForeignFormat(file)).ToList();
        // A module saved in both formats (2_Dense often is): the safetensors copy is enough.
        if (inFolder.Contains(folder + "/model.safetensors"))
            inFolder.Remove(folder + "/pytorch_model.bin");
        return inFolder.Order(StringComparer.Ordinal);
    }

    private static bool IsForeignFormat(string repoFile)
    {
        var segments = repoFile.Split('/');
        var fileName = segments[^1];
        return segments[..^1].Any(ForeignFolders.Contains)
            || ForeignWeightExtensions.Any(extension => fileName.EndsWith(extension, StringComparison.OrdinalIgnoreCase))
            || ForeignWeightPrefixes.Any(prefix => fileName.StartsWith(prefix, StringComparison.Ordinal));
    }
}
