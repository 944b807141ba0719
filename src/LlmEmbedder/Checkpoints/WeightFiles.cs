using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// The weight files of a Hugging Face model folder, read in the order transformers prefers them:
/// model.safetensors, a sharded safetensors index, pytorch_model.bin, a sharded pytorch_model.bin index.
/// </summary>
public static class WeightFiles
{
    public const string SafetensorsName = "model.safetensors";
    public const string SafetensorsIndexName = "model.safetensors.index.json";
    public const string PytorchName = "pytorch_model.bin";
    public const string PytorchIndexName = "pytorch_model.bin.index.json";

    /// <summary>
    /// Reads every tensor of the folder's weights onto the CPU in its stored dtype (fp32, fp16, bf16, ...).
    /// The caller owns the tensors; tensors a pytorch_model.bin stored tied (one storage) share memory.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string modelDir)
    {
        if (!Directory.Exists(modelDir))
            throw new EmbedderException($"{modelDir}: model directory not found");
        foreach (var name in new[] { SafetensorsName, SafetensorsIndexName, PytorchName, PytorchIndexName })
        {
            var path = Path.Combine(modelDir, name);
            if (!File.Exists(path)) continue;
            return name.EndsWith(".index.json", StringComparison.Ordinal) ? LoadSharded(path) : LoadFile(path);
        }
        throw new EmbedderException($"{modelDir}: no {SafetensorsName}, {SafetensorsIndexName} or {PytorchName}");
    }

    /// <summary>
    /// Reads one weight file: safetensors when the name ends in .safetensors, otherwise a state dict
    /// saved by torch.save (pytorch_model.bin, dense_pooler.bin). The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> LoadFile(string path)
    {
        if (!File.Exists(path))
            throw new EmbedderException($"{path}: file not found");
        return path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? Safetensors.Read(path) : PytorchBin.Read(path);
    }

    /// <summary>
    /// Writes model.safetensors (metadata {"format": "pt"}), floating-point tensors converted to
    /// <paramref name="dtype"/> (fp32 unless told otherwise), other tensors as they are.
    /// </summary>
    public static void SaveSafetensors(string modelDir, IReadOnlyDictionary<string, Tensor> tensors, ScalarType dtype = ScalarType.Float32)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64))
            throw new ArgumentException($"weights are saved in a floating-point dtype, not {dtype}", nameof(dtype));
        using var scope = NewDisposeScope();
        var converted = tensors.ToDictionary(
            p => p.Key,
            p => p.Value.is_floating_point() ? p.Value.detach().to(dtype) : p.Value.detach());
        Safetensors.Write(Path.Combine(modelDir, SafetensorsName), converted);
    }

    /// <summary>Reads the shards named by an index's "weight_map", after checking that every one exists.</summary>
    private static Dictionary<string, Tensor> LoadSharded(string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shards = weightMap.Values.Distinct().ToList();
        foreach (var shard in shards)
        {
            if (Path.GetFileName(shard) != shard || shard is "." or "..")
                throw new EmbedderException($"{indexPath}: shard '{shard}' is not a file name in the model directory");
            if (!File.Exists(Path.Combine(directory, shard)))
                throw new EmbedderException($"{indexPath}: shard '{shard}' listed in weight_map is missing");
        }

        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var shard in shards)
            {
                var shardPath = Path.Combine(directory, shard);
                foreach (var (name, tensor) in LoadFile(shardPath))
                {
                    if (!tensors.TryAdd(name, tensor))
                    {
                        tensor.Dispose();
                        throw new EmbedderException($"{shardPath}: tensor '{name}' is also in another shard");
                    }
                }
                var absent = weightMap.Where(p => p.Value == shard && !tensors.ContainsKey(p.Key)).Select(p => p.Key).FirstOrDefault();
                if (absent is not null)
                    throw new EmbedderException($"{shardPath}: has no tensor '{absent}', which {Path.GetFileName(indexPath)} puts there");
            }
        }
        catch
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw;
        }
        return tensors;
    }

    /// <summary>A sharded checkpoint's index (model.safetensors.index.json): tensor name → shard file name.</summary>
    public static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        try
        {
            var weightMap = JsonNode.Parse(File.ReadAllText(indexPath))?["weight_map"]?.AsObject()
                ?? throw new EmbedderException($"{indexPath}: no \"weight_map\" object");
            var result = weightMap.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>()
                ?? throw new EmbedderException($"{indexPath}: weight_map entry '{p.Key}' has no shard file name"));
            return result.Count > 0 ? result : throw new EmbedderException($"{indexPath}: weight_map is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new EmbedderException($"{indexPath}: not a valid shard index ({e.Message})");
        }
    }
}
