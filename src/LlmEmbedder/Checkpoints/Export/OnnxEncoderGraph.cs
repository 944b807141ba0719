using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LlmEmbedder.Modeling;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>How the exported graph stores the weights of its linear layers and word embeddings.</summary>
public enum OnnxWeights
{
    Float32,

    /// <summary>Int8 per channel, activations quantized at run time (<see cref="Int8Quantization"/>).</summary>
    Int8,
}

/// <summary>
/// A <see cref="SentenceEncoder"/> as one ONNX graph, node for node what <see cref="BertModel"/>, <see cref="Pooling"/>,
/// the Dense layer and the normalisation compute. Inputs input_ids, attention_mask, token_type_ids (int64
/// [batch, sequence]); outputs last_hidden_state [batch, sequence, hidden] (what sentence-transformers' ONNX backend
/// reads and pools itself) and sentence_embedding [batch, dimension] (pooled, projected and normalised inside the
/// graph, as the encoder spec says). Initializers carry the checkpoint's key names (a Linear's weight is stored
/// transposed, [in, out], as MatMul takes it: "{key}.weight.T").
/// </summary>
public static class OnnxEncoderGraph
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string TokenTypeIds = "token_type_ids";
    public const string LastHiddenState = "last_hidden_state";
    public const string SentenceEmbedding = "sentence_embedding";

    /// <summary>Metadata key of what sentence_embedding computes (pooling, dense, normalize, dimension, weights).</summary>
    public const string MetadataKey = "llm_embedder.sentence_embedding";

    public static OnnxGraphBuilder Build(SentenceEncoder encoder, OnnxWeights weights)
    {
        var config = encoder.Model.Config;
        var builder = new OnnxGraphBuilder("sentence_encoder");
        using var scope = NewDisposeScope();
        var state = encoder.Model.state_dict();
        Tensor Weight(string key) => state.TryGetValue(key, out var tensor)
            ? tensor.detach().to(ScalarType.Float32).cpu().contiguous()
            : throw new EmbedderException($"the model has no weight '{key}'");
        var graph = new Writer(builder, weights, Weight);

        var ids = builder.Input(InputIds, OnnxType.Int64, "batch", "sequence");
        var mask = builder.Input(AttentionMask, OnnxType.Int64, "batch", "sequence");
        var types = builder.Input(TokenTypeIds, OnnxType.Int64, "batch", "sequence");

        var hidden = graph.Embeddings(ids, types, config);
        var additiveMask = graph.AdditiveMask(mask);
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
            hidden = graph.Layer(hidden, additiveMask, $"encoder.layer.{layer}.", config);
        builder.Output(hidden, LastHiddenState, OnnxType.Float, "batch", "sequence", (long)config.HiddenSize);

        var pooled = graph.Pool(hidden, mask, encoder.Spec.Pooling);
        if (encoder.Dense is { } dense) pooled = graph.Dense(pooled, dense);
        if (encoder.Spec.Normalize) pooled = graph.L2Normalize(pooled);
        builder.Output(pooled, SentenceEmbedding, OnnxType.Float, "batch", (long)encoder.Dimension);

        builder.Metadata(MetadataKey, new JsonObject
        {
            ["pooling"] = encoder.Spec.Pooling.Name(),
            ["dense"] = encoder.Dense is not null,
            ["normalize"] = encoder.Spec.Normalize,
            ["dimension"] = encoder.Dimension,
            ["weights"] = weights == OnnxWeights.Int8 ? "int8" : "fp32",
        }.ToJsonString());
        return builder;
    }

    /// <summary>What a graph's metadata says its sentence_embedding computes.</summary>
    public sealed record Description(PoolingMethod Pooling, bool Dense, bool Normalize, int Dimension, string Weights)
    {
        public static Description? Parse(string? json, string path)
        {
            if (json is null) return null;
            var fields = new JsonFields(JsonNode.Parse(json) as JsonObject ?? throw new EmbedderException($"{path}: {MetadataKey} is not a JSON object"),
                path, MetadataKey + ".");
            return new Description(fields.Parse("pooling", Modeling.Pooling.Parse), fields.Bool("dense"), fields.Bool("normalize"),
                fields.Int("dimension"), fields.String("weights"));
        }
    }

    /// <summary>Emits the nodes of one model into a builder.</summary>
    private sealed class Writer(OnnxGraphBuilder graph, OnnxWeights weights, Func<string, Tensor> weight)
    {
        // Each int8 Linear input is quantized once, however many Linears read it.
        private readonly Dictionary<string, QuantizedActivations> quantizedInputs = new(StringComparer.Ordinal);

        public string Embeddings(string ids, string types, BertConfig config)
        {
            var words = weights == OnnxWeights.Int8
                ? Int8Quantization.Embedding(graph, ids, "embeddings.word_embeddings.weight", weight("embeddings.word_embeddings.weight"))
                : graph.Node("Gather", [Constant("embeddings.word_embeddings.weight"), ids]);
            // The first `sequence` rows of the position table: positions 0..sequence-1, broadcast over the batch.
            var sequence = graph.Node("Gather", [graph.Node("Shape", [ids]), graph.Int64s(1)]);
            var positions = graph.Node("Slice", [Constant("embeddings.position_embeddings.weight"), graph.Int64s(0), sequence, graph.Int64s(0)]);
            var tokenTypes = graph.Node("Gather", [Constant("embeddings.token_type_embeddings.weight"), types]);
            var summed = graph.Node("Add", [graph.Node("Add", [words, positions]), tokenTypes]);
            return LayerNorm(summed, "embeddings.LayerNorm", config.LayerNormEps);
        }

        /// <summary>[batch, 1, 1, sequence]: 0 where attended, float's minimum where padded (as <see cref="BertModel"/>).</summary>
        public string AdditiveMask(string mask)
        {
            var attended = graph.Node("Cast", [mask], null, OnnxGraphBuilder.Attribute("to", (long)OnnxType.Float));
            var padded = graph.Node("Sub", [graph.Scalar(1f), attended]);
            return graph.Node("Unsqueeze", [graph.Node("Mul", [padded, graph.Scalar(float.MinValue)]), graph.Int64s(1, 2)]);
        }

        public string Layer(string hidden, string additiveMask, string prefix, BertConfig config)
        {
            var attended = ResidualOutput(SelfAttention(hidden, additiveMask, prefix + "attention.self.", config), hidden, prefix + "attention.output.", config);
            var intermediate = Activation(Linear(attended, prefix + "intermediate.dense"), config.HiddenAct);
            return ResidualOutput(intermediate, attended, prefix + "output.", config);
        }

        private string SelfAttention(string hidden, string additiveMask, string prefix, BertConfig config)
        {
            var headShape = graph.Int64s(0, 0, config.NumAttentionHeads, config.HeadSize);
            string Heads(string projection, params long[] permutation) => graph.Node("Transpose",
                [graph.Node("Reshape", [Linear(hidden, prefix + projection), headShape])], null, OnnxGraphBuilder.Attribute("perm", permutation));
            var query = Heads("query", 0, 2, 1, 3);
            var keyTransposed = Heads("key", 0, 2, 3, 1);
            var value = Heads("value", 0, 2, 1, 3);
            var scores = graph.Node("Div", [graph.Node("MatMul", [query, keyTransposed]), graph.Scalar(MathF.Sqrt(config.HeadSize))]);
            var probabilities = graph.Node("Softmax", [graph.Node("Add", [scores, additiveMask])], null, OnnxGraphBuilder.Attribute("axis", -1L));
            var context = graph.Node("Transpose", [graph.Node("MatMul", [probabilities, value])], null, OnnxGraphBuilder.Attribute("perm", 0L, 2, 1, 3));
            return graph.Node("Reshape", [context, graph.Int64s(0, 0, config.HiddenSize)]);
        }

        private string ResidualOutput(string input, string residual, string prefix, BertConfig config) =>
            LayerNorm(graph.Node("Add", [Linear(input, prefix + "dense"), residual]), prefix + "LayerNorm", config.LayerNormEps);

        private string Activation(string x, string name) => name switch
        {
            "relu" => graph.Node("Relu", [x]),
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            "gelu_new" => graph.Node("Mul", [graph.Node("Mul", [x, graph.Scalar(0.5f)]), graph.Node("Add", [graph.Scalar(1f), graph.Node("Tanh", [
                graph.Node("Mul", [graph.Scalar(MathF.Sqrt(2f / MathF.PI)), graph.Node("Add", [x, graph.Node("Mul", [graph.Scalar(0.044715f),
                    graph.Node("Pow", [x, graph.Scalar(3f)])])])])])])]),
            // Exact GELU: 0.5·x·(1 + erf(x/√2)); ONNX Runtime fuses this pattern into one kernel.
            _ => graph.Node("Mul", [graph.Node("Mul", [x, graph.Scalar(0.5f)]),
                graph.Node("Add", [graph.Scalar(1f), graph.Node("Erf", [graph.Node("Div", [x, graph.Scalar(MathF.Sqrt(2f))])])])]),
        };

        public string Pool(string hidden, string mask, PoolingMethod pooling)
        {
            if (pooling == PoolingMethod.Cls)
                return graph.Node("Gather", [hidden, Scalar64(0)], null, OnnxGraphBuilder.Attribute("axis", 1L));
            var weightsPerToken = graph.Node("Unsqueeze", [graph.Node("Cast", [mask], null, OnnxGraphBuilder.Attribute("to", (long)OnnxType.Float)), graph.Int64s(-1)]);
            var summed = graph.Node("ReduceSum", [graph.Node("Mul", [hidden, weightsPerToken]), graph.Int64s(1)], null, OnnxGraphBuilder.Attribute("keepdims", 0L));
            var counts = graph.Node("ReduceSum", [weightsPerToken, graph.Int64s(1)], null, OnnxGraphBuilder.Attribute("keepdims", 0L));
            return graph.Node("Div", [summed, graph.Node("Max", [counts, graph.Scalar(1e-9f)])]);
        }

        public string Dense(string pooled, DenseLayer dense)
        {
            var projected = MatMulAdd(pooled, "dense", dense.Weight.detach().cpu().contiguous(), dense.Bias?.detach().cpu().contiguous());
            return dense.Activation == DenseActivation.Tanh ? graph.Node("Tanh", [projected]) : projected;
        }

        /// <summary>x / max(‖x‖₂, 1e-12), as torch.nn.functional.normalize.</summary>
        public string L2Normalize(string x)
        {
            // Opset 17's ReduceL2 takes its axes as an attribute (ReduceSum as an input).
            var norm = graph.Node("ReduceL2", [x], null, OnnxGraphBuilder.Attribute("axes", [-1L]), OnnxGraphBuilder.Attribute("keepdims", 1L));
            return graph.Node("Div", [x, graph.Node("Max", [norm, graph.Scalar(1e-12f)])]);
        }

        private string Linear(string x, string module)
        {
            var w = weight(module + ".weight");
            var b = weight(module + ".bias");
            if (weights != OnnxWeights.Int8) return MatMulAdd(x, module, w, b);
            if (!quantizedInputs.TryGetValue(x, out var quantized)) quantizedInputs[x] = quantized = Int8Quantization.QuantizeActivations(graph, x);
            return Int8Quantization.Linear(graph, quantized, module, w, b);
        }

        /// <summary>x·Wᵀ (+ b) in fp32.</summary>
        private string MatMulAdd(string x, string module, Tensor w, Tensor? b)
        {
            using var transposed = w.t().contiguous();
            var product = graph.Node("MatMul", [x, Add(module + ".weight.T", transposed)]);
            return b is null ? product : graph.Node("Add", [product, Add(module + ".bias", b)]);
        }

        private string LayerNorm(string x, string module, double eps) => graph.Node("LayerNormalization",
            [x, Constant(module + ".weight"), Constant(module + ".bias")], null,
            OnnxGraphBuilder.Attribute("axis", -1L), OnnxGraphBuilder.Attribute("epsilon", (float)eps));

        /// <summary>A weight stored as it is, under its checkpoint key.</summary>
        private string Constant(string key)
        {
            return Add(key, weight(key));
        }

        private string Scalar64(long value) => graph.Int64Scalar(value);

        private string Add(string name, Tensor tensor) => graph.Initializer(name, MemoryMarshal.Cast<byte, float>(tensor.bytes), tensor.shape);
    }
}
