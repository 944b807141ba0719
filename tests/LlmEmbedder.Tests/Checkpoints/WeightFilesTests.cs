using System.Text;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Checkpoints;

/// <summary>
/// Which file of a model folder WeightFiles reads, sharded safetensors, and the bad folders and files
/// each with the one-line error it must give.
/// </summary>
public sealed class WeightFilesTests : IDisposable
{
    private readonly string directory = TestPaths.NewTempDir("weights");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void ShardedSafetensorsIndexGivesTheUnionOfItsShards()
    {
        using var scope = NewDisposeScope();
        var (first, second) = (SampleTensors(1), SampleTensors(2, prefix: "encoder.layer.1."));
        Safetensors.Write(Path.Combine(directory, "model-00001-of-00002.safetensors"), first);
        Safetensors.Write(Path.Combine(directory, "model-00002-of-00002.safetensors"), second);
        WriteIndex(WeightFiles.SafetensorsIndexName, first.Keys.ToDictionary(k => k, _ => "model-00001-of-00002.safetensors")
            .Concat(second.Keys.ToDictionary(k => k, _ => "model-00002-of-00002.safetensors")));

        var loaded = WeightFiles.Load(directory);

        Assert.Equal(first.Count + second.Count, loaded.Count);
        foreach (var (name, tensor) in first.Concat(second))
            TensorAssert.Identical(tensor, loaded[name], name);
    }

    [Fact]
    public void SingleSafetensorsFileIsPreferredOverEverythingElse()
    {
        using var scope = NewDisposeScope();
        var preferred = SampleTensors(3);
        Safetensors.Write(Path.Combine(directory, WeightFiles.SafetensorsName), preferred);
        Safetensors.Write(Path.Combine(directory, "model-00001-of-00001.safetensors"), SampleTensors(4));
        WriteIndex(WeightFiles.SafetensorsIndexName, preferred.Keys.ToDictionary(k => k, _ => "model-00001-of-00001.safetensors"));
        File.WriteAllText(Path.Combine(directory, WeightFiles.PytorchName), "not read");

        var loaded = WeightFiles.Load(directory);

        foreach (var (name, tensor) in preferred)
            TensorAssert.Identical(tensor, loaded[name], name);
    }

    [Fact]
    public void FolderWithoutWeightsSaysWhatItLookedFor()
    {
        File.WriteAllText(Path.Combine(directory, "config.json"), "{}");

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.Equal($"{directory}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin", error.Message);
    }

    [Fact]
    public void ShardListedInTheIndexButAbsentIsNamed()
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors(5);
        Safetensors.Write(Path.Combine(directory, "model-00001-of-00002.safetensors"), tensors);
        WriteIndex(WeightFiles.SafetensorsIndexName, new Dictionary<string, string>
        {
            [tensors.Keys.First()] = "model-00001-of-00002.safetensors",
            ["pooler.dense.weight"] = "model-00002-of-00002.safetensors",
        });

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.Equal(
            $"{Path.Combine(directory, WeightFiles.SafetensorsIndexName)}: shard 'model-00002-of-00002.safetensors' listed in weight_map is missing",
            error.Message);
    }

    [Fact]
    public void ShardWithoutATensorItsIndexPutsThereIsNamed()
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors(6);
        var shard = Path.Combine(directory, "model-00001-of-00001.safetensors");
        Safetensors.Write(shard, tensors);
        WriteIndex(WeightFiles.SafetensorsIndexName,
            tensors.Keys.Append("pooler.dense.bias").ToDictionary(k => k, _ => "model-00001-of-00001.safetensors"));

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.Equal($"{shard}: has no tensor 'pooler.dense.bias', which {WeightFiles.SafetensorsIndexName} puts there", error.Message);
    }

    [Theory]
    [InlineData("{\"metadata\": {}}", "no \"weight_map\" object")]
    [InlineData("{\"weight_map\": {\"a\": \"../model.safetensors\"}}", "shard '../model.safetensors' is not a file name in the model directory")]
    [InlineData("{\"weight_map\": ", "not a valid shard index")]
    public void MalformedIndexIsOneLineNamingIt(string json, string expected)
    {
        File.WriteAllText(Path.Combine(directory, WeightFiles.SafetensorsIndexName), json);

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.StartsWith($"{Path.Combine(directory, WeightFiles.SafetensorsIndexName)}: {expected}", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    /// <summary>A valid file cut short anywhere: in the length, in the header, at the data, inside a tensor, by one byte.</summary>
    [Theory]
    [InlineData(5)]
    [InlineData(40)]
    [InlineData(-1000)]
    [InlineData(-100)]
    [InlineData(-1)]
    public void TruncatedSafetensorsIsOneLineNamingTheFile(int keepBytes)
    {
        var path = WriteValidSafetensors();
        var bytes = File.ReadAllBytes(path);
        int headerEnd = 8 + (int)BitConverter.ToInt64(bytes, 0);
        Assert.True(bytes.Length - 1000 > headerEnd, "the sample must have more than 1000 data bytes");
        File.WriteAllBytes(path, bytes[..(keepBytes >= 0 ? keepBytes : bytes.Length + keepBytes)]);

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.StartsWith($"{path}: ", error.Message);
        Assert.Contains("truncated", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    public static TheoryData<string, string, string> CorruptHeaders => new()
    {
        { "not JSON", "{\"a\": {\"dtype\": \"F32\"", "safetensors header is not valid JSON" },
        { "not an object", "[1, 2, 3]", "safetensors header is not valid JSON (not a JSON object)" },
        { "no dtype", "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", "malformed safetensors header entry for 'w'" },
        { "unknown dtype", "{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", "tensor 'w' has unsupported dtype F8_E4M3" },
        { "shape disagrees with bytes", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", "tensor 'w' has 8 bytes but shape [3] of F32 needs 12" },
        { "negative dimension", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", "tensor 'w' has a negative dimension" },
        { "overflowing shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 8]}}", "malformed safetensors header entry for 'w'" },
        { "offsets backwards", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", "tensor 'w' has invalid data_offsets" },
    };

    [Theory]
    [MemberData(nameof(CorruptHeaders))]
    public void CorruptSafetensorsHeaderIsOneLineNamingTheFile(string what, string header, string expected)
    {
        var path = Path.Combine(directory, WeightFiles.SafetensorsName);
        var headerBytes = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)headerBytes.Length), .. headerBytes, .. new byte[8]]);

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.True(error.Message.StartsWith($"{path}: {expected}", StringComparison.Ordinal), $"{what}: {error.Message}");
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void AbsurdHeaderLengthIsRefusedBeforeReadingIt()
    {
        var path = Path.Combine(directory, WeightFiles.SafetensorsName);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(long.MaxValue / 2), .. new byte[64]]);

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.Equal($"{path}: not a safetensors file or truncated (header length {long.MaxValue / 2}, file 72 bytes)", error.Message);
    }

    [Fact]
    public void PytorchBinThatIsNotAZipSaysSo()
    {
        var path = Path.Combine(directory, WeightFiles.PytorchName);
        File.WriteAllText(path, "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n");

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

        Assert.Equal($"{path}: not a PyTorch checkpoint (not a zip archive written by torch.save)", error.Message);
    }

    private string WriteValidSafetensors()
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(directory, WeightFiles.SafetensorsName);
        Safetensors.Write(path, SampleTensors(7));
        return path;
    }

    private void WriteIndex(string name, IEnumerable<KeyValuePair<string, string>> weightMap)
    {
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = 0 },
            ["weight_map"] = new JsonObject(weightMap.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
        };
        File.WriteAllText(Path.Combine(directory, name), index.ToJsonString());
    }

    private static Dictionary<string, Tensor> SampleTensors(int seed, string prefix = "encoder.layer.0.")
    {
        var generator = new Generator((ulong)seed);
        return new Dictionary<string, Tensor>
        {
            [prefix + "attention.self.query.weight"] = randn(16, 16, generator: generator),
            [prefix + "attention.self.query.bias"] = randn(16, generator: generator).to(ScalarType.Float16),
            [prefix + "output.LayerNorm.weight"] = randn(16, generator: generator).to(ScalarType.BFloat16),
        };
    }
}
