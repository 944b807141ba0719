using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>
/// Dynamic int8 quantization, as ONNX Runtime's quantize_dynamic writes it, in standard ONNX ops. Weights are
/// symmetric int8 with one scale per output channel (per row of a Linear's [out, in] weight, per token of the
/// embedding table): q = round(w / s), s = max|w| / 127. Activations are quantized per tensor at run time
/// (DynamicQuantizeLinear: uint8 with a zero point), multiplied in integers (MatMulInteger: uint8 × int8, the
/// AVX512-VNNI kernel) and scaled back to float. ONNX Runtime fuses each such chain into one
/// DynamicQuantizeMatMul kernel when it loads the model.
/// </summary>
public static class Int8Quantization
{
    private const float Levels = 127f;

    /// <summary>
    /// x as uint8 with its scale and zero point, computed per call (DynamicQuantizeLinear); one per input, shared by
    /// every Linear that reads it (query, key and value).
    /// </summary>
    public static QuantizedActivations QuantizeActivations(OnnxGraphBuilder graph, string x)
    {
        var outputs = graph.Node("DynamicQuantizeLinear", [x], 3);
        return new QuantizedActivations(outputs[0], outputs[1], outputs[2]);
    }

    /// <summary>y = x·Wᵀ + b with W in int8 and x quantized by <see cref="QuantizeActivations"/>; returns y's name.</summary>
    public static string Linear(OnnxGraphBuilder graph, QuantizedActivations x, string module, Tensor weight, Tensor bias)
    {
        using var scope = NewDisposeScope();
        var (quantized, scales) = Quantize(weight);
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        var qWeight = graph.Initializer(module + ".weight.T.int8", MemoryMarshal.Cast<byte, sbyte>(quantized.t().contiguous().bytes), inFeatures, outFeatures);
        var weightScale = graph.Initializer(module + ".weight.scale", MemoryMarshal.Cast<byte, float>(scales.bytes), outFeatures);
        var weightZeroPoint = graph.Initializer(module + ".weight.zero_point", new sbyte[outFeatures], outFeatures);

        var product = graph.Node("MatMulInteger", [x.Values, qWeight, x.ZeroPoint, weightZeroPoint]);
        var asFloat = graph.Node("Cast", [product], null, OnnxGraphBuilder.Attribute("to", (long)OnnxType.Float));
        var scaled = graph.Node("Mul", [asFloat, graph.Node("Mul", [x.Scale, weightScale])]);
        return graph.Node("Add", [scaled, graph.Initializer(module + ".bias", MemoryMarshal.Cast<byte, float>(bias.contiguous().bytes), outFeatures)]);
    }

    /// <summary>Rows of an int8 embedding table [vocab, hidden] with one scale per row, looked up and scaled back to float.</summary>
    public static string Embedding(OnnxGraphBuilder graph, string ids, string key, Tensor table)
    {
        using var scope = NewDisposeScope();
        var (quantized, scales) = Quantize(table);
        var qTable = graph.Initializer(key + ".int8", MemoryMarshal.Cast<byte, sbyte>(quantized.bytes), table.shape);
        var rowScales = graph.Initializer(key + ".scale", MemoryMarshal.Cast<byte, float>(scales.bytes), table.shape[0], 1);
        var rows = graph.Node("Cast", [graph.Node("Gather", [qTable, ids])], null, OnnxGraphBuilder.Attribute("to", (long)OnnxType.Float));
        return graph.Node("Mul", [rows, graph.Node("Gather", [rowScales, ids])]);
    }

    /// <summary>Symmetric per-row int8 (round half to even, as numpy.rint) and the scale of each row; an all-zero row gets scale 1.</summary>
    public static (Tensor Quantized, Tensor Scales) Quantize(Tensor matrix)
    {
        var values = matrix.to(ScalarType.Float32);
        var scales = values.abs().amax([1]) / Levels;
        scales = where(scales > 0, scales, ones_like(scales)).contiguous();
        var quantized = (values / scales.unsqueeze(1)).round().clamp(-Levels, Levels).to(ScalarType.Int8).contiguous();
        return (quantized, scales);
    }
}

/// <summary>The three outputs of DynamicQuantizeLinear: uint8 values, their float scale and uint8 zero point.</summary>
public sealed record QuantizedActivations(string Values, string Scale, string ZeroPoint);
