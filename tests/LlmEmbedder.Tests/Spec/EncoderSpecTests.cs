using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Tests.Spec;

/// <summary>
/// encoder_spec.json reads back what was written and refuses what it cannot trust; the one instruction rule; how
/// training's flags become a spec (mean wins over cls, dense on top, the trained tasks only).
/// </summary>
public sealed class EncoderSpecTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("encoder-spec");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static readonly EncoderInstructions TwoTasks = new("v", "instructions.json", new Dictionary<string, Instruction>
    {
        ["qa"] = new("问题: ", ""),
        ["icl"] = new("例子: ", "文档: "),
    });

    private static readonly EncoderSpec Sample = new()
    {
        Pooling = PoolingMethod.Mean, Dense = true, Metric = DenseMetric.Ip, QueryMaxLength = 32, KeyMaxLength = 128,
        Dtype = InferenceDtype.BFloat16, Instructions = TwoTasks,
    };

    [Fact]
    public void SavedSpecReadsBackEqualField()
    {
        Sample.Save(dir);
        var read = EncoderSpec.TryLoad(dir)!;
        Assert.Equal(Sample with { Instructions = EncoderInstructions.None }, read with { Instructions = EncoderInstructions.None });
        Assert.True(read.Instructions.SameTexts(Sample.Instructions));
        Assert.Equal("v", read.Instructions.Version);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, EncoderSpec.FileName)))!;
        Assert.False(json["normalize"]!.GetValue<bool>());
        Assert.Equal("dot", json["similarity_fn_name"]!.GetValue<string>());
        Assert.Equal("例子: ", json["instructions"]!["tasks"]!["icl"]!["query"]!.GetValue<string>());
    }

    [Fact]
    public void MatryoshkaDimsAreWrittenOnlyWhenTrainedAndReadBack()
    {
        (Sample with { MatryoshkaDims = [256, 64] }).Save(dir);
        Assert.Equal([256, 64], EncoderSpec.TryLoad(dir)!.MatryoshkaDims);

        // Without them the file is what earlier builds wrote and read.
        Sample.Save(dir);
        Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(dir, EncoderSpec.FileName)))!.AsObject().ContainsKey("matryoshka_dims"));
        Assert.Null(EncoderSpec.TryLoad(dir)!.MatryoshkaDims);
    }

    [Theory]
    [InlineData("matryoshka_dims", "[\"64\"]", "matryoshka_dims: expected a list of integers or null")]
    [InlineData("pooling", "\"max\"", "pooling: unknown pooling method 'max'")]
    [InlineData("poolling", "\"cls\"", "poolling: unknown field")]
    [InlineData("normalize", "true", "normalize must be false for dense_metric ip")]
    [InlineData("similarity_fn_name", "\"cosine\"", "similarity_fn_name must be \"dot\"")]
    [InlineData("format_version", "2", "format_version 2 is not supported")]
    [InlineData("query_max_length", "\"32\"", "query_max_length: expected an integer")]
    public void AFieldThatCannotBeTrustedIsAnErrorNamingTheFileAndField(string field, string value, string expected)
    {
        var json = Sample.ToJson();
        json[field] = JsonNode.Parse(value);
        var path = Path.Combine(dir, EncoderSpec.FileName);
        File.WriteAllText(path, json.ToJsonString());
        var error = Assert.Throws<EmbedderException>(() => EncoderSpec.TryLoad(dir));
        Assert.StartsWith(path + ": ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TheOneInstructionRule()
    {
        Assert.Equal(new Instruction("例子: ", "文档: "), TwoTasks.For("icl"));
        Assert.Contains("say which with --task", Assert.Throws<EmbedderException>(() => TwoTasks.For(null)).Message);
        Assert.Contains("(tasks: icl, qa)", Assert.Throws<EmbedderException>(() => TwoTasks.For("chat")).Message);

        var one = TwoTasks with { Tasks = new Dictionary<string, Instruction> { ["qa"] = new("问题: ", "") } };
        Assert.Equal("问题: ", one.For(null).Query);
        var anyTask = TwoTasks with { Tasks = new Dictionary<string, Instruction> { [EncoderInstructions.AnyTask] = new("q: ", "p: ") } };
        Assert.Equal("q: ", anyTask.For("whatever").Query);

        Assert.Equal(EncoderInstructions.NoInstruction, EncoderInstructions.None.For(null));
        Assert.Equal(EncoderInstructions.NoInstruction, EncoderInstructions.None.For("qa", "the eval data's task"));
        Assert.Contains("no instructions", Assert.Throws<EmbedderException>(() => EncoderInstructions.None.For("qa")).Message);
    }

    [Fact]
    public void TrainingFlagsBecomeASpecAsTheReferenceReadsThem()
    {
        var args = new ModelArguments { PoolingMethod = ["cls", "mean", "dense"], DenseMetric = "l2", Version = "llm-embedder", QueryMaxLength = 64, KeyMaxLength = 96 };
        var spec = args.ToEncoderSpec(["qa", "icl"]);
        Assert.Equal(PoolingMethod.Mean, spec.Pooling);
        Assert.True(spec.Dense);
        Assert.Equal(DenseMetric.L2, spec.Metric);
        Assert.False(spec.Normalize);
        Assert.Equal((64, 96), (spec.QueryMaxLength, spec.KeyMaxLength));
        Assert.Equal(["icl", "qa"], spec.Instructions.Tasks.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("Represent this query for retrieving relevant documents: ", spec.Instructions.Tasks["qa"].Query);

        Assert.Equal(PoolingMethod.Cls, (args with { PoolingMethod = ["dense"] }).ToEncoderSpec([]).Pooling);
        Assert.Empty((args with { AddInstruction = false }).ToEncoderSpec(["qa"]).Instructions.Tasks);
        Assert.Contains("--pooling_method 'max'", Assert.Throws<EmbedderException>(() => (args with { PoolingMethod = ["cls", "max"] }).ToEncoderSpec([])).Message);
    }

    [Fact]
    public void OverridesReportOnlyWhatChanges()
    {
        var same = Sample.Override(new EncoderSpecOverrides(PoolingMethod.Mean, DenseMetric.Ip, Dtype: InferenceDtype.BFloat16), out var none);
        Assert.Empty(none);
        Assert.Equal(Sample, same);
        var changed = Sample.Override(new EncoderSpecOverrides(PoolingMethod.Cls, MaxLength: 64), out var changes);
        Assert.Equal(["pooling mean → cls", "max length 32/128 → 64"], changes);
        Assert.Equal((PoolingMethod.Cls, 64, 64), (changed.Pooling, changed.QueryMaxLength, changed.KeyMaxLength));
    }
}
