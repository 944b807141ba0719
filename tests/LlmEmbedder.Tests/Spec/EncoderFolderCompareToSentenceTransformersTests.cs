using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Tokenization;
using Tokenizers.DotNet;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Spec;

/// <summary>
/// The encoder/ folder a training run writes, read as sentence-transformers reads it, against `encode`. The reference
/// (tests/reference/sentence_transformers_reference.py) knows nothing of our files: it follows modules.json in order
/// (Transformer → Pooling → [Dense] → [Normalize]), runs its own BERT forward pass in PyTorch from config.json and
/// model.safetensors, and reports the prompts of config_sentence_transformers.json. As SentenceTransformer.encode(texts,
/// prompt_name=...) does, the test prepends the prompt the reference read, tokenizes with Hugging Face tokenizers on the
/// folder's tokenizer.json truncated at sentence_bert_config.json's max_seq_length, and passes the ids to it.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class EncoderFolderCompareToSentenceTransformersTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-5;

    /// <summary>How much a prompt must at least move a vector for the comparison to show that prompts are applied.</summary>
    private const double PromptEffect = 1e-3;

    private readonly string dir = TestPaths.NewTempDir("st-reference");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>One encode call: --role, --task (null: none) and the sentence-transformers prompt name it corresponds to.</summary>
    private sealed record Case(string Role, string? Task, string PromptName);

    [Fact]
    public void MeanPoolingWithTwoTasksEncodesEveryTaskAndRoleLikeSentenceTransformersWithThatPrompt()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var run = TinyRuns.Train(dir, model, "mean-two-tasks", twoTasks: true, steps: 2, ["--pooling_method", "mean", .. TinyRuns.TwoTaskArgs(dir)]);

        var folder = Describe(run);
        Assert.Equal(["Transformer", "Pooling", "Normalize"], folder.Modules);
        Assert.Equal("cosine", folder.SimilarityFunction);
        // Two tasks: a prompt per task and role, and no "query"/"document" (no task is the default).
        Assert.Equal(TinyRuns.TwoTaskPrompts.OrderBy(p => p.Key), folder.Prompts.OrderBy(p => p.Key));

        CompareWithReference(run, folder, [
            new Case("query", "qa", "qa_query"), new Case("key", "qa", "qa_key"),
            new Case("query", "icl", "icl_query"), new Case("key", "icl", "icl_key"),
        ]);
    }

    [Fact]
    public void ClsPoolingWithDenseEncodesLikeSentenceTransformersThroughTheDenseModule()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var run = TinyRuns.Train(dir, model, "cls-dense", twoTasks: false, steps: 2, "--pooling_method", "cls", "dense");

        var folder = Describe(run);
        Assert.Equal(["Transformer", "Pooling", "Dense", "Normalize"], folder.Modules);
        AssertOneTaskPrompts(folder);
        var dense = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "encoder", "2_Dense", "config.json")))!;
        Assert.Equal(32, dense["out_features"]!.GetValue<int>());

        CompareWithReference(run, folder, [new Case("query", null, "query"), new Case("key", null, "document")]);
    }

    [Fact]
    public void InnerProductMetricHasNoNormalizeModuleAndEncodesLikeSentenceTransformers()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var run = TinyRuns.Train(dir, model, "ip", twoTasks: false, steps: 2, "--dense_metric", "ip");

        var folder = Describe(run);
        Assert.Equal(["Transformer", "Pooling"], folder.Modules);
        Assert.Equal("dot", folder.SimilarityFunction);
        AssertOneTaskPrompts(folder);

        var (ours, _) = CompareWithReference(run, folder, [new Case("query", null, "query"), new Case("key", null, "document")]);
        // Without a Normalize module the vectors keep their length, so normalising by mistake would show.
        var norms = ours.Chunk(32).Select(row => Math.Sqrt(row.Sum(v => (double)v * v))).ToArray();
        Assert.Contains(norms, n => Math.Abs(n - 1) > 0.01);
    }

    /// <summary>A run of one task (qa, the default bge instruction): its prompts, and the same as "query"/"document".</summary>
    private static void AssertOneTaskPrompts(FolderDescription folder)
    {
        var expected = new Dictionary<string, string>
        {
            ["qa_query"] = TinyRuns.BgeQueryInstruction, ["qa_key"] = "", ["query"] = TinyRuns.BgeQueryInstruction, ["document"] = "",
        };
        Assert.Equal(expected.OrderBy(p => p.Key), folder.Prompts.OrderBy(p => p.Key));
    }

    private sealed record FolderDescription(string[] Modules, Dictionary<string, string> Prompts, string? SimilarityFunction, int MaxSeqLength);

    private static FolderDescription Describe(string run)
    {
        var json = JsonNode.Parse(ReferencePython.Run("sentence_transformers_reference.py", "describe", Path.Combine(run, "encoder")))!;
        return new FolderDescription(
            json["modules"]!.AsArray().Select(m => m!.GetValue<string>()).ToArray(),
            json["prompts"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>()),
            json["similarity_fn_name"]?.GetValue<string>(),
            json["max_seq_length"]!.GetValue<int>());
    }

    /// <summary>
    /// For each case, `encode --model run --role R [--task T]` against the reference on prompt + text; and the reference
    /// without a prompt, which must differ wherever the prompt is not empty. Returns our vectors of all cases, in order.
    /// </summary>
    private (float[] Ours, float[] Reference) CompareWithReference(string run, FolderDescription folder, IReadOnlyList<Case> cases)
    {
        Assert.Equal(TinyRuns.MaxLength, folder.MaxSeqLength);
        var texts = TinyRuns.Texts;
        var rows = cases.SelectMany(c => texts.Select(t => folder.Prompts[c.PromptName] + t)).Concat(texts).ToList();
        var ids = Tokenize(Path.Combine(run, "encoder"), folder.MaxSeqLength, rows);
        Assert.Equal(folder.MaxSeqLength, ids.Max(row => row.Length)); // the long text is truncated

        var idsPath = Path.Combine(dir, $"ids-{Guid.NewGuid():N}.json");
        File.WriteAllText(idsPath, new JsonObject { ["input_ids"] = new JsonArray(ids.Select(row => (JsonNode)new JsonArray(row.Select(id => (JsonNode)id).ToArray())).ToArray()) }.ToJsonString());
        var referencePath = Path.ChangeExtension(idsPath, ".npy");
        var report = JsonNode.Parse(ReferencePython.Run("sentence_transformers_reference.py", "encode", Path.Combine(run, "encoder"), idsPath, referencePath))!;
        Assert.Equal(folder.Modules, report["modules"]!.AsArray().Select(m => m!.GetValue<string>()));
        var (reference, referenceRows, dimension) = Npy.ReadFloat32(referencePath);
        Assert.Equal(rows.Count, referenceRows);
        float[] ReferenceRows(int first) => reference.AsSpan(first * dimension, texts.Length * dimension).ToArray();
        var withoutPrompt = ReferenceRows(cases.Count * texts.Length);

        var ours = new List<float>();
        for (int i = 0; i < cases.Count; i++)
        {
            var (role, task, promptName) = cases[i];
            var encoded = TinyRuns.Encode(dir, run, role, task);
            Assert.Empty(encoded.Notes);
            var actual = encoded.Vectors;
            var expected = ReferenceRows(i * texts.Length);
            double difference = TinyRuns.MaxAbsDifference(expected, actual);
            output.WriteLine($"--role {role}{(task is null ? "" : $" --task {task}")} vs prompt_name=\"{promptName}\": max |Δ| = {difference:E2}");
            Assert.True(difference < Tolerance, $"--role {role} --task {task ?? "(none)"}: max |Δ| {difference:E2} from the sentence-transformers reference with prompt {promptName}");
            if (folder.Prompts[promptName].Length > 0)
            {
                double promptEffect = TinyRuns.MaxAbsDifference(expected, withoutPrompt);
                Assert.True(promptEffect > PromptEffect, $"prompt {promptName} moves the vectors by only {promptEffect:E2}: the comparison cannot tell whether it is applied");
            }
            ours.AddRange(actual);
        }
        return (ours.ToArray(), reference);
    }

    /// <summary>What the folder's tokenizer.json gives in Hugging Face tokenizers with truncation at max_seq_length (as tokenizer(..., truncation=True, max_length=N)).</summary>
    private int[][] Tokenize(string encoderDir, int maxSeqLength, IEnumerable<string> texts)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(encoderDir, "tokenizer.json")))!.AsObject();
        json["truncation"] = new JsonObject { ["direction"] = "Right", ["max_length"] = maxSeqLength, ["strategy"] = "LongestFirst", ["stride"] = 0 };
        using var tokenizer = new Tokenizer(HuggingFaceReference.Write(json, Path.Combine(dir, $"tokenizer-{Guid.NewGuid():N}")));
        return texts.Select(text => HuggingFaceReference.Encode(tokenizer, text)).ToArray();
    }
}
