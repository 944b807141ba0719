using LlmEmbedder.Checkpoints;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Checkpoints;

/// <summary>
/// StateDictLoader against Hugging Face's rules for loading a BertModel: which checkpoint keys map to which
/// parameter, which are dropped silently, and which errors stop the load (leaving the module untouched).
/// </summary>
public sealed class StateDictLoaderTests
{
    private const string QueryWeight = "encoder.layer.0.attention.self.query.weight";

    [Fact]
    public void BertForMaskedLMCheckpointLoadsIntoBaseModelLikeTransformers()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var names = model.state_dict().Keys.ToList();
        var checkpoint = RandomCheckpointFor(model, seed: 1);
        var stored = new Dictionary<string, Tensor>();
        int i = 0;
        foreach (var (name, tensor) in checkpoint)
        {
            // Stored dtypes cycle through fp32, fp16, bf16, as in half-precision checkpoints.
            var dtype = (i++ % 3) switch { 0 => ScalarType.Float32, 1 => ScalarType.Float16, _ => ScalarType.BFloat16 };
            stored["bert." + name] = tensor.to(dtype);
        }
        stored["bert.pooler.dense.weight"] = randn(TinyBertLike.Hidden, TinyBertLike.Hidden);
        stored["bert.pooler.dense.bias"] = randn(TinyBertLike.Hidden);
        stored["bert.embeddings.position_ids"] = arange(TinyBertLike.Positions).unsqueeze(0);
        stored["cls.predictions.bias"] = randn(TinyBertLike.Vocab);
        stored["cls.predictions.decoder.weight"] = stored["bert.embeddings.word_embeddings.weight"];
        stored["bert.encoder.layer.0.attention.self.rotary.weight"] = randn(2);

        var report = StateDictLoader.LoadInto(model, stored, "ckpt", requireAll: true);

        Assert.Empty(report.Missing);
        Assert.Equal(["encoder.layer.0.attention.self.rotary.weight"], report.Unexpected);
        Assert.Equal(
            ["cls.predictions.bias", "cls.predictions.decoder.weight", "embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"],
            report.Ignored.Order(StringComparer.Ordinal));
        var parameters = model.state_dict();
        Assert.Equal(names.Count, parameters.Count);
        foreach (var name in names)
        {
            var parameter = parameters[name];
            var source = stored["bert." + name];
            Assert.Equal(ScalarType.Float32, parameter.dtype);
            // fp16 and bf16 widen to fp32 exactly: narrowing the parameter back gives the stored bits.
            TensorAssert.Identical(source, parameter.to(source.dtype), name);
            TensorAssert.Identical(source.to(ScalarType.Float64), parameter.to(ScalarType.Float64), name);
        }
    }

    [Fact]
    public void LegacyGammaBetaLayerNormNamesBecomeWeightAndBias()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var checkpoint = RandomCheckpointFor(model, seed: 2);
        var stored = checkpoint.ToDictionary(
            p => p.Key.Replace("LayerNorm.weight", "LayerNorm.gamma").Replace("LayerNorm.bias", "LayerNorm.beta"), p => p.Value);
        Assert.Contains("embeddings.LayerNorm.gamma", stored.Keys);

        var report = StateDictLoader.LoadInto(model, stored, "ckpt");

        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        TensorAssert.Identical(checkpoint["embeddings.LayerNorm.weight"], model.state_dict()["embeddings.LayerNorm.weight"], "loaded");
        TensorAssert.Identical(checkpoint["encoder.layer.1.output.LayerNorm.bias"], model.state_dict()["encoder.layer.1.output.LayerNorm.bias"], "loaded");
    }

    [Fact]
    public void BaseCheckpointGetsBertPrefixWhenTheModuleHasIt()
    {
        using var scope = NewDisposeScope();
        using var model = new WithBertPrefix();
        using var inner = new TinyBertLike();
        var checkpoint = RandomCheckpointFor(inner, seed: 3);
        checkpoint["pooler.dense.bias"] = randn(TinyBertLike.Hidden);
        checkpoint["cls.predictions.bias"] = randn(TinyBertLike.Vocab);

        var report = StateDictLoader.LoadInto(model, checkpoint, "ckpt");

        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal(["pooler.dense.bias", "cls.predictions.bias"], report.Ignored);
        TensorAssert.Identical(checkpoint[QueryWeight], model.state_dict()["bert." + QueryWeight], "loaded");
    }

    [Fact]
    public void PrefixedCheckpointIntoPrefixedModuleStillIgnoresThePooler()
    {
        using var scope = NewDisposeScope();
        using var model = new WithBertPrefix();
        var checkpoint = RandomCheckpointFor(model, seed: 8);
        checkpoint["bert.pooler.dense.weight"] = randn(TinyBertLike.Hidden, TinyBertLike.Hidden);

        var report = StateDictLoader.LoadInto(model, checkpoint, "ckpt", requireAll: true);

        Assert.Empty(report.Unexpected);
        Assert.Equal(["bert.pooler.dense.weight"], report.Ignored);
        TensorAssert.Identical(checkpoint["bert." + QueryWeight], model.state_dict()["bert." + QueryWeight], "loaded");
    }

    [Fact]
    public void WrongShapeNamesTheWeightAndBothShapesAndLeavesTheModuleUnchanged()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var before = Snapshot(model);
        var checkpoint = RandomCheckpointFor(model, seed: 4);
        checkpoint[QueryWeight] = randn(6, 6);

        var error = Assert.Throws<EmbedderException>(() => StateDictLoader.LoadInto(model, checkpoint, "/m/model.safetensors"));

        Assert.Equal($"/m/model.safetensors: weight '{QueryWeight}' has shape [6, 6] but the model expects [8, 8]", error.Message);
        AssertUnchanged(before, model);
    }

    [Fact]
    public void CheckpointOfAnotherWidthReportsTheFirstMismatchAndHowManyMore()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        using var wider = new TinyBertLike(hidden: 12);
        var checkpoint = RandomCheckpointFor(wider, seed: 5);
        int mismatched = checkpoint.Count(p => !p.Value.shape.SequenceEqual(model.state_dict()[p.Key].shape));

        var error = Assert.Throws<EmbedderException>(() => StateDictLoader.LoadInto(model, checkpoint, "ckpt"));

        Assert.StartsWith("ckpt: weight '", error.Message);
        Assert.Contains("has shape [24, 12] but the model expects [24, 8]", error.Message);
        Assert.EndsWith($"(and {mismatched - 1} more weights of the wrong shape)", error.Message);
    }

    [Fact]
    public void MissingWeightsAreReportedOrRefused()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var before = Snapshot(model);
        var checkpoint = RandomCheckpointFor(model, seed: 6);
        var dropped = checkpoint.Keys.Where(k => k.StartsWith("encoder.layer.1.", StringComparison.Ordinal)).ToList();
        foreach (var name in dropped) checkpoint.Remove(name);
        Assert.Equal(16, dropped.Count);

        var error = Assert.Throws<EmbedderException>(() => StateDictLoader.LoadInto(model, checkpoint, "ckpt", requireAll: true));
        var firstFive = string.Join(", ", dropped.Take(5).Select(n => $"'{n}'"));
        Assert.Equal($"ckpt: the model's weights {firstFive} (and 11 more) are not in the checkpoint", error.Message);
        AssertUnchanged(before, model);

        var report = StateDictLoader.LoadInto(model, checkpoint, "ckpt");
        Assert.Equal(dropped, report.Missing);
        TensorAssert.Identical(checkpoint[QueryWeight], model.state_dict()[QueryWeight], "loaded");
        TensorAssert.Identical(before["encoder.layer.1.attention.self.query.weight"], model.state_dict()["encoder.layer.1.attention.self.query.weight"], "loaded");
    }

    [Fact]
    public void TwoKeysForOneWeightAreRefused()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyBertLike();
        var checkpoint = RandomCheckpointFor(model, seed: 7);
        checkpoint["embeddings.LayerNorm.gamma"] = ones(TinyBertLike.Hidden);

        var error = Assert.Throws<EmbedderException>(() => StateDictLoader.LoadInto(model, checkpoint, "ckpt"));

        Assert.Equal("ckpt: both 'embeddings.LayerNorm.weight' and 'embeddings.LayerNorm.gamma' are weight 'embeddings.LayerNorm.weight'", error.Message);
    }

    /// <summary>A fresh random tensor for every parameter of the module, under the module's names.</summary>
    internal static Dictionary<string, Tensor> RandomCheckpointFor(nn.Module module, int seed)
    {
        var generator = new Generator((ulong)seed);
        return module.state_dict().ToDictionary(p => p.Key, p => randn(p.Value.shape, generator: generator));
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    private static void AssertUnchanged(Dictionary<string, Tensor> before, nn.Module module)
    {
        foreach (var (name, value) in module.state_dict())
            TensorAssert.Identical(before[name], value, $"{name} after a refused load");
    }

    private sealed class WithBertPrefix : nn.Module
    {
        // The field name is the prefix: a BertForMaskedLM-like wrapper holds its BertModel as "bert".
        private readonly TinyBertLike bert;

        public WithBertPrefix() : base(nameof(WithBertPrefix))
        {
            bert = new TinyBertLike();
            RegisterComponents();
        }
    }
}
