using LlmEmbedder.Checkpoints;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Checkpoints;

/// <summary>Runs tests/reference/write_torch_state_dict.py once: PyTorch writes the checkpoints these tests read.</summary>
public sealed class TorchWrittenCheckpoint : IDisposable
{
    public string Directory { get; } = TestPaths.NewTempDir("torch-save");

    public TorchWrittenCheckpoint() => ReferencePython.Run("write_torch_state_dict.py", Directory);

    /// <summary>The same tensors in the script's own minimal safetensors file, in their stored dtypes.</summary>
    public string ReferencePath => Path.Combine(Directory, "reference.safetensors");

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

/// <summary>
/// pytorch_model.bin files written by torch.save (Debian's python3-torch) read back with the values PyTorch holds:
/// fp32/fp16/bf16/int64 tensors, tied and sliced storages, shards; then loaded into a BertModel-like module.
/// </summary>
public sealed class WeightFilesCompareToPyTorchTests(TorchWrittenCheckpoint checkpoint) : IClassFixture<TorchWrittenCheckpoint>
{
    [Fact]
    public void PytorchModelBinHoldsWhatTorchSaved()
    {
        using var scope = NewDisposeScope();
        var reference = Safetensors.Read(checkpoint.ReferencePath);

        var loaded = WeightFiles.Load(checkpoint.Directory);

        AssertSameTensors(reference, loaded);
        // The script covers every dtype a BERT checkpoint stores; make sure that stays so.
        Assert.Equal(
            [ScalarType.Int64, ScalarType.Float16, ScalarType.Float32, ScalarType.BFloat16],
            loaded.Values.Select(t => t.dtype).Distinct().Order());
    }

    [Fact]
    public void SlicesOfOneStorageAndTiedWeightsComeBackAsSeparateTensors()
    {
        using var scope = NewDisposeScope();
        var loaded = WeightFiles.Load(checkpoint.Directory);
        var reference = Safetensors.Read(checkpoint.ReferencePath);

        // Layer 0's query/key/value are rows 0-7, 8-15, 16-23 of one fused storage in the file.
        foreach (var name in new[] { "query", "key", "value" })
        {
            var key = $"bert.encoder.layer.0.attention.self.{name}.weight";
            TensorAssert.Identical(reference[key], loaded[key], key);
            Assert.True(loaded[key].is_contiguous(), key);
        }
        TensorAssert.Identical(loaded["bert.embeddings.word_embeddings.weight"], loaded["cls.predictions.decoder.weight"], "tied decoder");
    }

    [Fact]
    public void ShardedPytorchBinIndexHoldsWhatTorchSaved()
    {
        using var scope = NewDisposeScope();
        var reference = Safetensors.Read(checkpoint.ReferencePath);

        var loaded = WeightFiles.Load(Path.Combine(checkpoint.Directory, "sharded"));

        AssertSameTensors(reference, loaded);
    }

    [Fact]
    public void BertForMaskedLMBinLoadsIntoBaseModelWithHeadsIgnored()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var reference = Safetensors.Read(checkpoint.ReferencePath);
        var weights = WeightFiles.Load(checkpoint.Directory);

        var report = StateDictLoader.LoadInto(model, weights, checkpoint.Directory, requireAll: true);

        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(
            reference.Keys.Where(k => k.StartsWith("cls.", StringComparison.Ordinal) || k.StartsWith("bert.pooler.", StringComparison.Ordinal))
                .Select(k => k.StartsWith("bert.", StringComparison.Ordinal) ? k["bert.".Length..] : k)
                .Append("embeddings.position_ids")
                .Order(StringComparer.Ordinal),
            report.Ignored.Order(StringComparer.Ordinal));
        foreach (var (name, parameter) in model.state_dict())
            TensorAssert.Identical(reference["bert." + name].to(ScalarType.Float32), parameter.detach(), name);
    }

    [Fact]
    public void TruncatedPytorchBinIsOneLineNamingTheFile()
    {
        var directory = TestPaths.NewTempDir("torch-cut");
        try
        {
            var path = Path.Combine(directory, WeightFiles.PytorchName);
            var bytes = File.ReadAllBytes(Path.Combine(checkpoint.Directory, WeightFiles.PytorchName));
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

            var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(directory));

            Assert.StartsWith($"{path}: truncated or corrupt zip archive", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void LegacyTorchSaveFormatIsRefusedWithAReason()
    {
        var path = Path.Combine(checkpoint.Directory, "legacy", WeightFiles.PytorchName);

        var error = Assert.Throws<EmbedderException>(() => WeightFiles.Load(Path.GetDirectoryName(path)!));

        Assert.StartsWith($"{path}: saved in PyTorch's legacy (before 1.6) format", error.Message);
    }

    private static void AssertSameTensors(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, tensor) in expected)
            TensorAssert.Identical(tensor, actual[name], name);
    }
}
