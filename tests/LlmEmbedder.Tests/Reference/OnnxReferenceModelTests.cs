using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Reference;

/// <summary>
/// Checks the pretrained-model fixture against sources that do not depend on our conversion: the
/// published model configurations, the node names and order the PyTorch exporter wrote into the
/// ONNX graph, the graph's own initializers, ONNX Runtime, and the Hugging Face tokenizers.
/// </summary>
public sealed class OnnxReferenceModelTests
{
    public static TheoryData<string> Models => new() { "arctic", "minilm" };

    private static OnnxReferenceModel Model(string name) => name switch
    {
        "arctic" => PretrainedOnnxModels.ArcticXs,
        "minilm" => PretrainedOnnxModels.MiniLM,
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static readonly string[] LinearsInExportOrder =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    [Theory]
    [MemberData(nameof(Models))]
    public void ConfigMatchesThePublishedModelConfig(string name)
    {
        // Both models' Hugging Face config.json: BERT, 6 layers, 12 heads, hidden 384, FFN 1536, uncased 30522 vocab.
        var expected = new BertConfig(
            VocabSize: 30522, HiddenSize: 384, NumHiddenLayers: 6, NumAttentionHeads: 12, IntermediateSize: 1536,
            MaxPositionEmbeddings: 512, TypeVocabSize: 2, LayerNormEps: 1e-12, HiddenAct: "gelu");
        Assert.Equal(expected, BertConfig.Load(Path.Combine(Model(name).HuggingFaceDir, "config.json")));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void SafetensorsHasExactlyTheHuggingFaceBertModelKeys(string name)
    {
        var expected = new Dictionary<string, long[]>
        {
            ["embeddings.word_embeddings.weight"] = [30522, 384],
            ["embeddings.position_embeddings.weight"] = [512, 384],
            ["embeddings.token_type_embeddings.weight"] = [2, 384],
            ["embeddings.LayerNorm.weight"] = [384],
            ["embeddings.LayerNorm.bias"] = [384],
        };
        for (int i = 0; i < 6; i++)
        {
            foreach (var linear in LinearsInExportOrder)
            {
                long outFeatures = linear == "intermediate.dense" ? 1536 : 384;
                long inFeatures = linear == "output.dense" ? 1536 : 384;
                expected[$"encoder.layer.{i}.{linear}.weight"] = [outFeatures, inFeatures];
                expected[$"encoder.layer.{i}.{linear}.bias"] = [outFeatures];
            }
            foreach (var norm in new[] { "attention.output.LayerNorm", "output.LayerNorm" })
            {
                expected[$"encoder.layer.{i}.{norm}.weight"] = [384];
                expected[$"encoder.layer.{i}.{norm}.bias"] = [384];
            }
        }

        var header = Safetensors.ReadHeader(Path.Combine(Model(name).HuggingFaceDir, "model.safetensors"));

        Assert.Equal(101, expected.Count);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), header.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected)
        {
            Assert.Equal("F32", header[key].Dtype);
            Assert.True(shape.SequenceEqual(header[key].Shape), $"{key}: [{string.Join(", ", header[key].Shape)}]");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LinearWeightNamesFollowTheExportersLayerOrder(string name)
    {
        var model = Model(name);
        var graph = OnnxGraph.Load(model.OnnxPath);
        var keyByInitializer = model.LinearWeightInitializer.ToDictionary(p => p.Value, p => p.Key);
        var weightMatMuls = graph.Nodes.Where(n => n.OpType == "MatMul" && graph.Initializers.ContainsKey(n.Inputs[1])).ToList();

        var expectedOrder = Enumerable.Range(0, 6).SelectMany(i => LinearsInExportOrder.Select(l => $"encoder.layer.{i}.{l}.weight"));
        Assert.Equal(expectedOrder, weightMatMuls.Select(n => keyByInitializer[n.Inputs[1]]));
        Assert.Equal(36, keyByInitializer.Count);
        Assert.All(keyByInitializer.Keys, initializer => Assert.DoesNotContain("weight", initializer));

        // The newer exporter (arctic) also names each node after its module path.
        if (name == "arctic")
            foreach (var node in weightMatMuls)
                Assert.Equal(node.Name.Trim('/').Replace('/', '.').Replace(".MatMul", ".weight"), keyByInitializer[node.Inputs[1]]);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void SafetensorsHoldsTheOnnxInitializersWithLinearWeightsTransposed(string name)
    {
        var model = Model(name);
        var graph = OnnxGraph.Load(model.OnnxPath);
        var tensors = Safetensors.Read(Path.Combine(model.HuggingFaceDir, "model.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            foreach (var (key, tensor) in tensors)
            {
                bool isLinear = model.LinearWeightInitializer.TryGetValue(key, out var initializerName);
                var source = graph.Initializers[isLinear ? initializerName! : key];
                var onnx = torch.tensor(source.ToFloats(), [.. source.Dims]);
                Assert.True(tensor.Equals(isLinear ? onnx.t() : onnx), key);
            }
            Assert.Equal(101, tensors.Count);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void VocabHasOneLinePerWordEmbeddingRowAndTokenizesLikeBertUncased(string name)
    {
        var model = Model(name);
        var lines = File.ReadAllText(model.VocabPath).Split('\n')[..^1];

        Assert.Equal(model.Config.VocabSize, lines.Length);
        Assert.All(lines, line => Assert.DoesNotContain('\r', line));
        Assert.Equal(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], new[] { 0, 100, 101, 102, 103 }.Select(i => lines[i]));
        Assert.Equal(File.ReadAllText(model.VocabPath), File.ReadAllText(Path.Combine(model.HuggingFaceDir, "vocab.txt")));

        // bert-base-uncased: tokenizer("Hello world!").input_ids == [101, 7592, 2088, 999, 102]
        using var tokenizer = new Tokenizers.DotNet.Tokenizer(model.TokenizerJsonPath);
        Assert.Equal([101u, 7592u, 2088u, 999u, 102u], tokenizer.Encode("Hello world!"));
        Assert.Equal(["hello", "world", "!"], new[] { 7592, 2088, 999 }.Select(i => lines[i]));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void OnnxRuntimeLastHiddenStateIsFiniteAndIgnoresPadding(string name)
    {
        var model = Model(name);
        const int seqLen = 7, hidden = 384;
        // "[CLS] hello world ! [SEP]" padded to 7, and a full-length pair with token types 0/1.
        long[] ids = [101, 7592, 2088, 999, 102, 0, 0, 101, 7592, 102, 2088, 999, 102, 102];
        long[] mask = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1];
        long[] types = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];

        var batched = model.RunLastHiddenState(ids, mask, types, batch: 2, seqLen);
        var alone = model.RunLastHiddenState(ids[..5], mask[..5], types[..5], batch: 1, seqLen: 5);

        Assert.Equal(2 * seqLen * hidden, batched.Length);
        Assert.All(batched, v => Assert.True(float.IsFinite(v)));
        float maxPaddingEffect = alone.Select((v, i) => Math.Abs(v - batched[i])).Max();
        Assert.True(maxPaddingEffect < 1e-4f, $"padding changed real tokens by {maxPaddingEffect}");
        // Contextual: the same token ("hello") gets different vectors in the two sequences.
        float helloDifference = Enumerable.Range(0, hidden).Max(d => Math.Abs(batched[1 * hidden + d] - batched[(seqLen + 1) * hidden + d]));
        Assert.True(helloDifference > 1e-3f, $"'hello' differs by only {helloDifference} across contexts");
    }
}
