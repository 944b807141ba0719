using System.Globalization;
using System.Text.RegularExpressions;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Tests.Reference;

/// <summary>A float tensor in row-major order with its shape.</summary>
internal sealed record HfTensor(long[] Shape, float[] Data);

/// <summary>
/// Turns a PyTorch-exported BERT ONNX graph back into Hugging Face BertModel weights and config.
/// Named initializers (embeddings, biases, LayerNorms) already carry their checkpoint keys. The
/// exporter stored each Linear weight transposed ([in, out]) under an anonymous name as the second
/// input of a MatMul; the Add that follows adds the named "X.bias", so the weight is "X.weight",
/// transposed back to [out, in].
/// </summary>
internal sealed partial record OnnxBertConversion(
    BertConfig Config,
    IReadOnlyDictionary<string, HfTensor> Weights,
    IReadOnlyDictionary<string, string> LinearWeightInitializer,
    IReadOnlyDictionary<string, string> LinearWeightMatMulNode)
{
    public static OnnxBertConversion Convert(OnnxGraph graph)
    {
        var weights = new Dictionary<string, HfTensor>(StringComparer.Ordinal);
        foreach (var tensor in graph.Initializers.Values)
        {
            // position_ids is an int64 buffer, pooler.* is not part of the encoder; both are left out.
            if (tensor.DataType != OnnxTensor.FloatType || !CheckpointKey().IsMatch(tensor.Name)) continue;
            weights[tensor.Name] = new HfTensor([.. tensor.Dims], tensor.ToFloats());
        }

        var initializerByKey = new Dictionary<string, string>(StringComparer.Ordinal);
        var nodeByKey = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var matMul in graph.Nodes.Where(n => n.OpType == "MatMul"))
        {
            if (!graph.Initializers.TryGetValue(matMul.Inputs[1], out var kernel)) continue; // activation x activation (attention scores)
            var key = LinearWeightKey(graph, matMul, kernel);
            if (!initializerByKey.TryAdd(key, kernel.Name))
                throw new InvalidDataException($"two MatMul weights map to '{key}': '{initializerByKey[key]}' and '{kernel.Name}'");
            nodeByKey[key] = matMul.Name;
            weights[key] = new HfTensor([kernel.Dims[1], kernel.Dims[0]], Transpose(kernel.ToFloats(), (int)kernel.Dims[0], (int)kernel.Dims[1]));
        }

        var config = InferConfig(graph, weights);
        CheckKeysAndShapes(config, weights);
        return new OnnxBertConversion(config, weights, initializerByKey, nodeByKey);
    }

    /// <summary>Every key of a Hugging Face BertModel state dict without the pooler, with its shape.</summary>
    public static IReadOnlyDictionary<string, long[]> ExpectedShapes(BertConfig config)
    {
        long hidden = config.HiddenSize, intermediate = config.IntermediateSize;
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal)
        {
            ["embeddings.word_embeddings.weight"] = [config.VocabSize, hidden],
            ["embeddings.position_embeddings.weight"] = [config.MaxPositionEmbeddings, hidden],
            ["embeddings.token_type_embeddings.weight"] = [config.TypeVocabSize, hidden],
            ["embeddings.LayerNorm.weight"] = [hidden],
            ["embeddings.LayerNorm.bias"] = [hidden],
        };
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var layer = $"encoder.layer.{i}.";
            foreach (var projection in new[] { "query", "key", "value" })
            {
                shapes[$"{layer}attention.self.{projection}.weight"] = [hidden, hidden];
                shapes[$"{layer}attention.self.{projection}.bias"] = [hidden];
            }
            shapes[$"{layer}attention.output.dense.weight"] = [hidden, hidden];
            shapes[$"{layer}attention.output.dense.bias"] = [hidden];
            shapes[$"{layer}attention.output.LayerNorm.weight"] = [hidden];
            shapes[$"{layer}attention.output.LayerNorm.bias"] = [hidden];
            shapes[$"{layer}intermediate.dense.weight"] = [intermediate, hidden];
            shapes[$"{layer}intermediate.dense.bias"] = [intermediate];
            shapes[$"{layer}output.dense.weight"] = [hidden, intermediate];
            shapes[$"{layer}output.dense.bias"] = [hidden];
            shapes[$"{layer}output.LayerNorm.weight"] = [hidden];
            shapes[$"{layer}output.LayerNorm.bias"] = [hidden];
        }
        return shapes;
    }

    private static string LinearWeightKey(OnnxGraph graph, OnnxNode matMul, OnnxTensor kernel)
    {
        var consumers = graph.Consumers(matMul.Outputs[0]);
        if (consumers is not [{ OpType: "Add" } add])
            throw new InvalidDataException(
                $"MatMul '{matMul.Name}' (weight '{kernel.Name}') feeds [{string.Join(", ", consumers.Select(c => c.OpType))}], not one Add");
        var bias = add.Inputs.SingleOrDefault(i => i != matMul.Outputs[0]);
        if (bias is null || !bias.EndsWith(".bias", StringComparison.Ordinal) || !graph.Initializers.TryGetValue(bias, out var biasTensor))
            throw new InvalidDataException($"MatMul '{matMul.Name}' (weight '{kernel.Name}') is followed by an Add without a named '*.bias' initializer");
        if (kernel.Dims.Count != 2 || biasTensor.Dims.Count != 1 || kernel.Dims[1] != biasTensor.Dims[0])
            throw new InvalidDataException(
                $"MatMul weight '{kernel.Name}' [{string.Join(", ", kernel.Dims)}] does not match bias '{bias}' [{string.Join(", ", biasTensor.Dims)}]");
        return bias[..^".bias".Length] + ".weight";
    }

    private static float[] Transpose(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[c * rows + r] = source[r * columns + c];
        return result;
    }

    private static BertConfig InferConfig(OnnxGraph graph, Dictionary<string, HfTensor> weights)
    {
        HfTensor Weight(string key) => weights.TryGetValue(key, out var t) ? t : throw new InvalidDataException($"graph has no '{key}'");
        var words = Weight("embeddings.word_embeddings.weight");
        int hidden = (int)words.Shape[1];
        int layers = weights.Keys.Select(k => LayerIndex().Match(k)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().Count();

        int erfCount = graph.Nodes.Count(n => n.OpType == "Erf");
        if (erfCount != layers)
            throw new InvalidDataException($"expected one exact (erf) GELU per layer, found {erfCount} Erf nodes for {layers} layers");

        return new BertConfig(
            VocabSize: (int)words.Shape[0],
            HiddenSize: hidden,
            NumHiddenLayers: layers,
            NumAttentionHeads: InferHeadCount(graph, hidden, layers),
            IntermediateSize: (int)Weight("encoder.layer.0.intermediate.dense.bias").Shape[0],
            MaxPositionEmbeddings: (int)Weight("embeddings.position_embeddings.weight").Shape[0],
            TypeVocabSize: (int)Weight("embeddings.token_type_embeddings.weight").Shape[0],
            LayerNormEps: InferLayerNormEps(graph, layers),
            HiddenAct: "gelu");
    }

    /// <summary>
    /// The query/key/value projections are reshaped to [batch, seq, heads, head_size]; the shape is a
    /// Concat of two runtime sizes and two constants, so the heads are the third entry.
    /// </summary>
    private static int InferHeadCount(OnnxGraph graph, int hidden, int layers)
    {
        var heads = new List<long>();
        foreach (var reshape in graph.Nodes.Where(n => n.OpType == "Reshape"))
        {
            if (graph.Producer(reshape.Inputs[0]) is not { OpType: "Add" } add
                || !add.Inputs.Any(i => ProjectionBias().IsMatch(i)))
                continue;
            var shape = ResolveShape(graph, reshape.Inputs[1]);
            if (shape is not [_, _, > 0 and var headCount, > 0 and var headSize] || headCount * headSize != hidden)
                throw new InvalidDataException(
                    $"attention Reshape '{reshape.Name}' has target shape [{string.Join(", ", shape)}], expected [batch, seq, heads, head_size] with heads * head_size = {hidden}");
            heads.Add(headCount);
        }
        if (heads.Count != 3 * layers || heads.Distinct().Count() != 1)
            throw new InvalidDataException($"found head counts [{string.Join(", ", heads)}] on {heads.Count} query/key/value Reshapes, expected {3 * layers} equal ones");
        return (int)heads[0];
    }

    /// <summary>Constant entries of a shape tensor; entries computed at run time are -1.</summary>
    private static long[] ResolveShape(OnnxGraph graph, string valueName)
    {
        if (graph.Constant(valueName) is { } constant) return constant.ToInt64s();
        if (graph.Producer(valueName) is { OpType: "Concat" } concat)
            return [.. concat.Inputs.SelectMany(i => graph.Constant(i)?.ToInt64s() ?? [-1L])];
        return [-1];
    }

    /// <summary>Each LayerNorm is exported as x / Sqrt(Add(variance, eps)); read eps from those Adds.</summary>
    private static double InferLayerNormEps(OnnxGraph graph, int layers)
    {
        var values = new List<float>();
        foreach (var sqrt in graph.Nodes.Where(n => n.OpType == "Sqrt"))
        {
            if (graph.Producer(sqrt.Inputs[0]) is not { OpType: "Add" } add) continue;
            var eps = add.Inputs.Select(graph.Constant).SingleOrDefault(t => t is { DataType: OnnxTensor.FloatType, ElementCount: 1 });
            if (eps is not null) values.Add(eps.ToFloats()[0]);
        }
        int expected = 2 * layers + 1;
        if (values.Count != expected || values.Distinct().Count() != 1)
            throw new InvalidDataException($"found LayerNorm eps values [{string.Join(", ", values)}], expected {expected} equal ones");
        // The graph holds eps as float32; its shortest round-trip text ("1E-12") is the config's value.
        return double.Parse(values[0].ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private static void CheckKeysAndShapes(BertConfig config, Dictionary<string, HfTensor> weights)
    {
        var expected = ExpectedShapes(config);
        var missing = expected.Keys.Except(weights.Keys).ToList();
        var extra = weights.Keys.Except(expected.Keys).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"converted keys differ from BertModel: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}]");
        foreach (var (key, shape) in expected)
            if (!weights[key].Shape.SequenceEqual(shape))
                throw new InvalidDataException($"'{key}' has shape [{string.Join(", ", weights[key].Shape)}], expected [{string.Join(", ", shape)}]");
    }

    [GeneratedRegex(@"^(embeddings|encoder)\.")]
    private static partial Regex CheckpointKey();

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();

    [GeneratedRegex(@"^encoder\.layer\.\d+\.attention\.self\.(query|key|value)\.bias$")]
    private static partial Regex ProjectionBias();
}
