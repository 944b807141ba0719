using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Training;

namespace LlmEmbedder.Tests.Spec;

/// <summary>
/// Tiny training runs through the CLI (1-layer BERT, hidden 32, a few steps: enough to move the weights) whose encoder
/// folders the spec tests read back, and the CLI calls they compare.
/// </summary>
public static class TinyRuns
{
    /// <summary>Query and key max length of every run: equal, so that --max_length can restate both.</summary>
    public const int MaxLength = 24;

    public const string TwoTaskVersion = "two_tasks";
    public const string BgeQueryInstruction = "Represent this sentence for searching relevant passages: ";

    /// <summary>The instruction file's strings: qa in Chinese, icl in English (lower-cased and split into word pieces).</summary>
    public static readonly IReadOnlyDictionary<string, string> TwoTaskPrompts = new Dictionary<string, string>
    {
        ["qa_query"] = "问题：",
        ["qa_key"] = "文档：",
        ["icl_query"] = "Find examples like this one: ",
        ["icl_key"] = "Example for retrieval: ",
    };

    /// <summary>Short and mixed texts, and one longer than <see cref="MaxLength"/> tokens with any prompt.</summary>
    public static readonly string[] Texts =
    [
        "今天星期几",
        "北京的历史很悠久",
        "Who wrote the Analects?",
        "熊猫喜欢吃竹子，也喜欢在树上睡觉，它们生活在四川和陕西的山林里，每天要花十几个小时吃东西。",
    ];

    /// <summary>An instruction file with one version of two tasks (qa, icl), as <see cref="TwoTaskPrompts"/>.</summary>
    public static string WriteInstructionFile(string dir)
    {
        var path = Path.Combine(dir, "instructions.json");
        var tasks = new System.Text.Json.Nodes.JsonObject();
        foreach (var task in new[] { "qa", "icl" })
            tasks[task] = new System.Text.Json.Nodes.JsonObject { ["query"] = TwoTaskPrompts[task + "_query"], ["key"] = TwoTaskPrompts[task + "_key"] };
        var file = new System.Text.Json.Nodes.JsonObject { [TwoTaskVersion] = new System.Text.Json.Nodes.JsonObject { ["instruction"] = tasks } };
        File.WriteAllText(path, file.ToJsonString());
        return path;
    }

    /// <summary>The training data of a run: qa rows, and icl rows too for a two-task run.</summary>
    public static string[] TrainingFiles(string dir, bool twoTasks)
    {
        var qa = Path.Combine(dir, "qa", "train.jsonl");
        var icl = Path.Combine(dir, "icl", "train.jsonl");
        if (!File.Exists(qa)) TrainingDataGenerator.Write(qa, rows: 16, task: "qa", seed: 5, negatives: 3);
        if (twoTasks && !File.Exists(icl)) TrainingDataGenerator.Write(icl, rows: 16, task: "icl", seed: 6, negatives: 3);
        return twoTasks ? [qa, icl] : [qa];
    }

    /// <summary>The flags of a run with the two-task instruction file (one batch per task).</summary>
    public static string[] TwoTaskArgs(string dir) =>
        ["--version", TwoTaskVersion, "--instruction_file", WriteInstructionFile(dir), "--inbatch_same_dataset", "epoch"];

    /// <summary>Trains into dir/name and returns that output_dir; <paramref name="extra"/> adds or replaces flags.</summary>
    public static string Train(string dir, string model, string name, bool twoTasks, int steps, params string[] extra)
    {
        var output = Path.Combine(dir, name);
        var result = CliProcess.Run([
            "train", "--query_encoder", model, "--train_data", .. TrainingFiles(dir, twoTasks), "--output_dir", output, "--data_root", dir,
            "--per_device_train_batch_size", "4", "--train_group_size", "2", "--max_steps", steps.ToString(), "--learning_rate", "1e-3",
            "--warmup_ratio", "0", "--seed", "7", "--query_max_length", MaxLength.ToString(), "--key_max_length", MaxLength.ToString(),
            "--dtype", "fp32", "--logging_steps", "1", .. extra,
        ]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        return output;
    }

    /// <summary>What `encode` wrote: the .npy file and what it printed on stderr.</summary>
    public sealed record Encoded(string NpyPath, string Stderr)
    {
        public byte[] Bytes => File.ReadAllBytes(NpyPath);
        public float[] Vectors => Npy.ReadFloat32(NpyPath).Values;
        public string[] Notes => NoteLines(Stderr);
    }

    /// <summary>`encode` of <see cref="Texts"/> with the given flags into a new .npy in dir.</summary>
    public static Encoded Encode(string dir, string model, string role, string? task, params string[] flags)
    {
        var input = Path.Combine(dir, "texts.txt");
        if (!File.Exists(input)) File.WriteAllText(input, string.Join("\n", Texts) + "\n");
        var output = Path.Combine(dir, $"encoded-{Guid.NewGuid():N}.npy");
        var result = CliProcess.Run([
            "encode", "--model", model, "--input", input, "--output", output, "--role", role,
            .. task is null ? Array.Empty<string>() : ["--task", task], .. flags,
        ]);
        Assert.True(result.ExitCode == 0, $"encode --model {model} --role {role}: {result.Stderr}");
        return new Encoded(output, result.Stderr);
    }

    public static double MaxAbsDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }

    /// <summary>The override note lines of a command's stderr.</summary>
    public static string[] NoteLines(string stderr) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(line => line.StartsWith("llm-embedder: note:", StringComparison.Ordinal)).ToArray();
}
