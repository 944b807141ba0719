using System.Collections.Concurrent;
using System.Text.Json;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Spec;

/// <summary>
/// Two tiny runs for <see cref="EncoderSpecFlagsCliTests"/>: "tied" (mean pooling, the two-task instruction file,
/// 3 steps with checkpoint-2) and "untied" (--tie_encoders false, query and key encoders from different weights).
/// </summary>
public sealed class SpecFlagRuns : IDisposable
{
    private readonly ConcurrentDictionary<string, TinyRuns.Encoded> tiedEncodings = new();

    public SpecFlagRuns()
    {
        var model = CliProcess.TinyChineseModel(Dir);
        var keyModel = CliProcess.TinyChineseModel(Dir, seed: 2, name: "key-model");
        Tied = TinyRuns.Train(Dir, model, "tied", twoTasks: true, steps: 3, ["--pooling_method", "mean", "--save_steps", "2", .. TinyRuns.TwoTaskArgs(Dir)]);
        Untied = TinyRuns.Train(Dir, model, "untied", twoTasks: false, steps: 2, "--tie_encoders", "false", "--key_encoder", keyModel);
    }

    public string Dir { get; } = TestPaths.NewTempDir("spec-flags");
    public string Tied { get; }
    public string Untied { get; }
    public string InstructionFile => Path.Combine(Dir, "instructions.json");

    /// <summary>The tied run's spec restated as flags: every value it holds, none different.</summary>
    public string[] TiedSpecFlags =>
    [
        "--pooling_method", "mean", "--dense_metric", "cos", "--max_length", TinyRuns.MaxLength.ToString(), "--dtype", "fp32",
        "--version", TinyRuns.TwoTaskVersion, "--instruction_file", InstructionFile,
    ];

    /// <summary>`encode --model tied --role R --task qa` without flags (once per role; several tests compare with it).</summary>
    public TinyRuns.Encoded TiedQa(string role) => tiedEncodings.GetOrAdd(role, r => TinyRuns.Encode(Dir, Tied, r, "qa"));

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>
/// encode, eval, mine and export on a trained folder: restating the values its encoder_spec.json holds as flags gives
/// byte-identical outputs and no note; a flag that differs is named in one "note:" line and changes the vectors.
/// --model takes the run, its encoder/ and a checkpoint-N folder; an untied run encodes each side with its own encoder.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class EncoderSpecFlagsCliTests(SpecFlagRuns runs) : IClassFixture<SpecFlagRuns>
{
    private const string NotePrefix = "llm-embedder: note: flags override the model's encoder spec";

    private static readonly string[] Passages =
    [
        "北京是中国的首都。", "上海是中国最大的城市。", "长江是中国最长的河流。", "黄河是中华文明的摇篮。", "熊猫生活在四川的竹林里。",
        "茶起源于中国。", "长城有两千多年的历史。", "春节是中国最重要的节日。", "饺子是北方的传统食物。", "西湖在杭州。",
    ];

    private string Dir => runs.Dir;
    private string TiedSpecFile => Path.Combine(runs.Tied, "encoder", "encoder_spec.json");

    [Fact]
    public void EncodeWithTheSpecsOwnValuesIsByteIdenticalAndSilentAndADifferingFlagIsNoted()
    {
        foreach (var role in new[] { "query", "key" })
        {
            var plain = runs.TiedQa(role);
            var restated = TinyRuns.Encode(Dir, runs.Tied, role, "qa", runs.TiedSpecFlags);
            Assert.Empty(plain.Notes);
            Assert.Empty(restated.Notes);
            Assert.True(plain.Bytes.AsSpan().SequenceEqual(restated.Bytes), $"--role {role}: the restated flags change the .npy");
        }

        // The version alone: the folder holds its instructions, so the file that defined the version is not needed again.
        var versionOnly = TinyRuns.Encode(Dir, runs.Tied, "query", "qa", "--version", TinyRuns.TwoTaskVersion);
        Assert.Empty(versionOnly.Notes);
        Assert.True(runs.TiedQa("query").Bytes.AsSpan().SequenceEqual(versionOnly.Bytes), "--version restated alone changes the .npy");

        var overridden = TinyRuns.Encode(Dir, runs.Tied, "query", "qa", "--pooling_method", "cls", "--max_length", "16", "--dense_metric", "cos");
        Assert.Equal($"{NotePrefix} ({TiedSpecFile}): pooling mean → cls, max length 24 → 16", Assert.Single(overridden.Notes));
        Assert.True(TinyRuns.MaxAbsDifference(runs.TiedQa("query").Vectors, overridden.Vectors) > 1e-3);
    }

    [Fact]
    public void EvalResultsAreIdenticalWithAndWithoutTheSpecsFlagsAndAnOverrideIsNoted()
    {
        var (evalData, corpus) = WriteEvalSet();
        (string Results, string Metrics, string Stderr) Eval(string name, params string[] flags)
        {
            var output = Path.Combine(Dir, name);
            var result = CliProcess.Run(["eval", "--model", runs.Tied, "--eval_data", evalData, "--corpus", corpus, "--key_template", "{text}",
                "--no_cache", "--cutoffs", "1", "5", "--hits", "10", "--output_dir", output, .. flags]);
            Assert.True(result.ExitCode == 0, result.Stderr);
            return (File.ReadAllText(Path.Combine(output, "results.jsonl")), File.ReadAllText(Path.Combine(output, "metrics.json")), result.Stderr);
        }

        // Without --task, the eval file's first row (task qa) picks the instruction.
        var plain = Eval("eval-plain");
        var restated = Eval("eval-restated", [.. runs.TiedSpecFlags, "--task", "qa"]);
        Assert.Empty(TinyRuns.NoteLines(plain.Stderr));
        Assert.Empty(TinyRuns.NoteLines(restated.Stderr));
        Assert.Equal(plain.Results, restated.Results);
        Assert.Equal(plain.Metrics, restated.Metrics);
        Assert.Contains("\"score\"", plain.Results);

        var innerProduct = Eval("eval-ip", "--dense_metric", "ip");
        Assert.Equal($"{NotePrefix} ({TiedSpecFile}): dense_metric cos → ip", Assert.Single(TinyRuns.NoteLines(innerProduct.Stderr)));
        Assert.NotEqual(plain.Results, innerProduct.Results); // unnormalised scores
    }

    [Fact]
    public void MineOutputIsIdenticalWithAndWithoutTheSpecsFlagsAndAnOverrideIsNoted()
    {
        var (_, corpus) = WriteEvalSet();
        var input = Path.Combine(Dir, "mine-input.jsonl");
        File.WriteAllLines(input, Passages.Take(4).Select(p => JsonSerializer.Serialize(new { query = p[..3], pos = new[] { p }, task = "qa" })));
        (string Output, string Stderr) Mine(string name, params string[] flags)
        {
            var output = Path.Combine(Dir, name + ".jsonl");
            var result = CliProcess.Run(["mine", "--model", runs.Tied, "--input_file", input, "--candidate_pool", corpus, "--output_file", output,
                "--range_for_sampling", "1-6", "--negative_number", "3", "--no_cache", "--task", "qa", .. flags]);
            Assert.True(result.ExitCode == 0, result.Stderr);
            return (File.ReadAllText(output), result.Stderr);
        }

        var plain = Mine("mine-plain");
        var restated = Mine("mine-restated", runs.TiedSpecFlags);
        Assert.Empty(TinyRuns.NoteLines(plain.Stderr));
        Assert.Empty(TinyRuns.NoteLines(restated.Stderr));
        Assert.Equal(plain.Output, restated.Output);
        Assert.Equal(4, plain.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        var otherVersion = Mine("mine-bge", "--version", "bge");
        Assert.Equal($"{NotePrefix} ({TiedSpecFile}): instructions {TinyRuns.TwoTaskVersion} → bge", Assert.Single(TinyRuns.NoteLines(otherVersion.Stderr)));
    }

    [Fact]
    public void ExportWithTheSpecsFlagsWritesTheSameSpecAndTheExportEncodesLikeTheSource()
    {
        CliProcess.Result Export(string name, params string[] flags) =>
            CliProcess.Run(["export", "--encoder", runs.Tied, "--output_dir", Path.Combine(Dir, name), .. flags]);

        var plain = Export("export-plain");
        var restated = Export("export-restated", "--pooling_method", "mean", "--dense_metric", "cos", "--max_seq_length", TinyRuns.MaxLength.ToString(),
            "--version", TinyRuns.TwoTaskVersion, "--instruction_file", runs.InstructionFile);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.True(restated.ExitCode == 0, restated.Stderr);
        Assert.Empty(TinyRuns.NoteLines(plain.Stderr));
        Assert.Empty(TinyRuns.NoteLines(restated.Stderr));
        // The spec and the sentence-transformers files: as the encoder folder training wrote them, with or without the flags.
        foreach (var file in new[] { "encoder_spec.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json" })
        {
            var source = File.ReadAllText(Path.Combine(runs.Tied, "encoder", file));
            Assert.Equal(source, File.ReadAllText(Path.Combine(Dir, "export-plain", file)));
            Assert.Equal(source, File.ReadAllText(Path.Combine(Dir, "export-restated", file)));
        }

        var exported = Path.Combine(Dir, "export-plain");
        foreach (var role in new[] { "query", "key" })
            Assert.True(runs.TiedQa(role).Bytes.AsSpan().SequenceEqual(TinyRuns.Encode(Dir, exported, role, "qa").Bytes), $"--role {role}: the export encodes differently");

        // Without encoder_spec.json the folder is a plain sentence-transformers folder, and still encodes the same.
        File.Delete(Path.Combine(exported, "encoder_spec.json"));
        Assert.True(runs.TiedQa("query").Bytes.AsSpan().SequenceEqual(TinyRuns.Encode(Dir, exported, "query", "qa").Bytes),
            "the export read through its sentence-transformers files alone encodes differently");

        var overridden = Export("export-cls", "--pooling_method", "cls");
        Assert.True(overridden.ExitCode == 0, overridden.Stderr);
        Assert.Equal($"{NotePrefix} ({TiedSpecFile}): pooling mean → cls", Assert.Single(TinyRuns.NoteLines(overridden.Stderr)));
    }

    [Fact]
    public void ModelIsTheRunItsEncoderFolderOrACheckpoint()
    {
        var fromRun = runs.TiedQa("query");
        var fromEncoder = TinyRuns.Encode(Dir, Path.Combine(runs.Tied, "encoder"), "query", "qa");
        Assert.True(fromRun.Bytes.AsSpan().SequenceEqual(fromEncoder.Bytes));

        var checkpoint = Path.Combine(runs.Tied, "checkpoint-2");
        var fromCheckpoint = TinyRuns.Encode(Dir, checkpoint, "query", "qa");
        var fromCheckpointEncoder = TinyRuns.Encode(Dir, Path.Combine(checkpoint, "encoder"), "query", "qa");
        Assert.Empty(fromCheckpoint.Notes);
        Assert.True(fromCheckpoint.Bytes.AsSpan().SequenceEqual(fromCheckpointEncoder.Bytes));
        Assert.Equal(File.ReadAllText(TiedSpecFile), File.ReadAllText(Path.Combine(checkpoint, "encoder", "encoder_spec.json")));
        // Step 2's weights, not the final ones.
        Assert.True(TinyRuns.MaxAbsDifference(fromRun.Vectors, fromCheckpoint.Vectors) > 1e-5);
    }

    [Fact]
    public void UntiedRunEncodesQueriesWithTheQueryEncoderAndKeysWithTheKeyEncoder()
    {
        var queryEncoder = Path.Combine(runs.Untied, "query_encoder");
        var keyEncoder = Path.Combine(runs.Untied, "key_encoder");
        var queries = TinyRuns.Encode(Dir, runs.Untied, "query", null);
        var keys = TinyRuns.Encode(Dir, runs.Untied, "key", null);
        Assert.True(queries.Bytes.AsSpan().SequenceEqual(TinyRuns.Encode(Dir, queryEncoder, "query", null).Bytes), "queries are not encoded by query_encoder");
        Assert.True(keys.Bytes.AsSpan().SequenceEqual(TinyRuns.Encode(Dir, keyEncoder, "key", null).Bytes), "keys are not encoded by key_encoder");
        // The two encoders differ, so the key side really is the key encoder's.
        Assert.True(TinyRuns.MaxAbsDifference(keys.Vectors, TinyRuns.Encode(Dir, queryEncoder, "key", null).Vectors) > 1e-3);
    }

    /// <summary>Eval JSONL (each passage's first characters as its query, task qa) and the corpus JSONL.</summary>
    private (string EvalData, string Corpus) WriteEvalSet()
    {
        var corpus = Path.Combine(Dir, "corpus.jsonl");
        File.WriteAllLines(corpus, Passages.Select(p => JsonSerializer.Serialize(new { text = p })));
        var evalData = Path.Combine(Dir, "eval.jsonl");
        File.WriteAllLines(evalData, Passages.Select((p, i) => JsonSerializer.Serialize(new { query = p[..3], pos_index = new[] { i }, task = "qa" })));
        return (evalData, corpus);
    }
}
