using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Checkpoints;

/// <summary>
/// model.safetensors written by WeightFiles.SaveSafetensors, read by tests/reference/read_safetensors_numpy.py
/// (json + numpy only, checking that the data offsets tile the file): same names, dtypes, shapes and values.
/// </summary>
public sealed class SafetensorsCompareToNumpyReaderTests : IDisposable
{
    private readonly string directory = TestPaths.NewTempDir("st-numpy");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    /// <summary>Floating-point weights in fp32 by default or the dtype asked for; integer buffers as they are.</summary>
    [Theory]
    [InlineData(null, "F32")]
    [InlineData(ScalarType.BFloat16, "BF16")]
    public void NumpyReadsTheSavedWeights(ScalarType? dtype, string floatName)
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors();

        if (dtype is null) WeightFiles.SaveSafetensors(directory, tensors);
        else WeightFiles.SaveSafetensors(directory, tensors, dtype.Value);
        var read = ReadWithNumpy(Path.Combine(directory, WeightFiles.SafetensorsName));

        Assert.Equal("pt", read["metadata"]!["format"]!.GetValue<string>());
        var readTensors = read["tensors"]!.AsObject();
        Assert.Equal(tensors.Keys.Order(StringComparer.Ordinal), readTensors.Select(p => p.Key).Order(StringComparer.Ordinal));
        foreach (var (name, tensor) in tensors)
        {
            bool isFloat = tensor.is_floating_point();
            AssertSame(readTensors[name]!, isFloat ? floatName : "I64", isFloat ? tensor.to(dtype ?? ScalarType.Float32) : tensor, name);
        }
    }

    [Fact]
    public void SavedWeightsReadBackAsFp32()
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors();
        WeightFiles.SaveSafetensors(directory, tensors);

        var loaded = WeightFiles.Load(directory);

        foreach (var (name, tensor) in tensors)
            TensorAssert.Identical(tensor.is_floating_point() ? tensor.to(ScalarType.Float32) : tensor, loaded[name], name);
    }

    /// <summary>fp32, fp16 and bf16 weights, an int64 buffer, a transposed (non-contiguous) view, a scalar and an empty tensor.</summary>
    private static Dictionary<string, Tensor> SampleTensors()
    {
        var generator = new Generator(42);
        return new Dictionary<string, Tensor>
        {
            ["encoder.layer.0.attention.self.query.weight"] = randn(5, 7, generator: generator),
            ["encoder.layer.0.attention.self.query.bias"] = randn(5, generator: generator).to(ScalarType.Float16),
            ["embeddings.LayerNorm.weight"] = (1 + 0.1 * randn(7, generator: generator)).to(ScalarType.BFloat16),
            ["embeddings.position_ids"] = arange(16).unsqueeze(0),
            ["transposed"] = randn(3, 4, generator: generator).t(),
            ["scalar"] = tensor(3.25f),
            ["empty"] = zeros(0, 4),
        };
    }

    private static JsonNode ReadWithNumpy(string path) =>
        JsonNode.Parse(ReferencePython.Run("read_safetensors_numpy.py", path))!;

    private static void AssertSame(JsonNode read, string dtype, Tensor expected, string name)
    {
        Assert.Equal(dtype, read["dtype"]!.GetValue<string>());
        Assert.Equal(expected.shape, read["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
        // Every F32/BF16/I64 value here is exact as a double, in Python's JSON and here alike.
        // (TorchSharp's data<T>().ToArray() throws on an empty tensor.)
        var expectedValues = expected.NumberOfElements == 0 ? [] : expected.contiguous().to(ScalarType.Float64).data<double>().ToArray();
        var readValues = read["values"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        Assert.True(expectedValues.SequenceEqual(readValues), $"{name}: values differ");
    }
}
