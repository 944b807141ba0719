using System.Text.Json;

namespace LlmEmbedder.Data;

/// <summary>The plain string prefixes of one task: query = Query + query, key = Key + key.</summary>
public sealed record Instruction(string Query, string Key)
{
    public string ApplyToQuery(string query) => Query + query;
    public string ApplyToKey(string key) => Key + key;
}

/// <summary>
/// One named version (--version): the instruction of each task, optionally one instruction for any task
/// (how bge and e5 work), and optionally a per-task training table used with --use_train_config.
/// </summary>
public sealed record InstructionVersion(
    string Name,
    IReadOnlyDictionary<string, Instruction> Instructions,
    Instruction? AnyTaskInstruction = null,
    IReadOnlyDictionary<string, TaskTrainingOverrides>? Training = null)
{
    /// <summary>The instruction for a task; the error names the tasks this version knows.</summary>
    public Instruction InstructionFor(string task)
    {
        if (Instructions.TryGetValue(task, out var instruction)) return instruction;
        if (AnyTaskInstruction is not null) return AnyTaskInstruction;
        throw new EmbedderException(
            $"version \"{Name}\" has no instruction for task \"{task}\" (it has: {Listing(Instructions.Keys)})");
    }

    /// <summary>The training table entry for a task (--use_train_config); the error names what exists.</summary>
    public TaskTrainingOverrides TrainingFor(string task)
    {
        if (Training is null || Training.Count == 0)
            throw new EmbedderException(
                $"version \"{Name}\" has no training config, so --use_train_config cannot be used with it (add a \"training\" table with --instruction_file)");
        return Training.TryGetValue(task, out var overrides)
            ? overrides
            : throw new EmbedderException(
                $"version \"{Name}\" has no training config for task \"{task}\" (it has: {Listing(Training.Keys)})");
    }

    internal static string Listing(IEnumerable<string> names)
    {
        var sorted = names.Order(StringComparer.Ordinal).ToArray();
        return sorted.Length == 0 ? "none" : string.Join(", ", sorted);
    }
}

/// <summary>
/// The instruction versions a run can choose from: the built-in ones of the reference (bge, e5,
/// llm-embedder) plus zh_llm_embedder of the Chinese recipe, and whatever an --instruction_file adds or
/// replaces. A file version replaces a built-in one of the same name as a whole.
/// </summary>
public sealed class InstructionSet
{
    private readonly Dictionary<string, InstructionVersion> _versions;

    private InstructionSet(Dictionary<string, InstructionVersion> versions) => _versions = versions;

    public static InstructionSet BuiltIn { get; } = new(BuiltInVersions().ToDictionary(v => v.Name, StringComparer.Ordinal));

    public IReadOnlyCollection<string> VersionNames => _versions.Keys;

    public InstructionVersion Get(string version) => _versions.TryGetValue(version, out var found)
        ? found
        : throw new EmbedderException(
            $"unknown instruction version \"{version}\" (available: {InstructionVersion.Listing(_versions.Keys)}; add one with --instruction_file)");

    /// <summary>This set plus the versions of an --instruction_file (same name: the file wins).</summary>
    public InstructionSet WithFile(string path, TextEncoding? encoding = null)
    {
        var merged = new Dictionary<string, InstructionVersion>(_versions, StringComparer.Ordinal);
        foreach (var version in InstructionFile.Read(path, encoding))
            merged[version.Name] = version;
        return new InstructionSet(merged);
    }

    private static IEnumerable<InstructionVersion> BuiltInVersions()
    {
        yield return new InstructionVersion("bge", new Dictionary<string, Instruction>(),
            AnyTaskInstruction: new Instruction("Represent this sentence for searching relevant passages: ", ""));
        yield return new InstructionVersion("e5", new Dictionary<string, Instruction>(),
            AnyTaskInstruction: new Instruction("query: ", "passage: "));
        yield return new InstructionVersion("llm-embedder",
            new Dictionary<string, Instruction>
            {
                ["qa"] = new("Represent this query for retrieving relevant documents: ", "Represent this document for retrieval: "),
                ["convsearch"] = new("Encode this query and context for searching relevant passages: ", "Encode this passage for retrieval: "),
                ["chat"] = new("Embed this dialogue to find useful historical dialogues: ", "Embed this historical dialogue for retrieval: "),
                ["lrlm"] = new("Embed this text chunk for finding useful historical chunks: ", "Embed this historical text chunk for retrieval: "),
                ["icl"] = new("Convert this example into vector to look for useful examples: ", "Convert this example into vector for retrieval: "),
                ["tool"] = new("Transform this user request for fetching helpful tool descriptions: ", "Transform this tool description for retrieval: "),
            },
            Training: new Dictionary<string, TaskTrainingOverrides>
            {
                // The reference table lists stable_distill=false explicitly for the tasks that do not use it,
                // so --stable_distill on the command line does not leak into them.
                ["qa"] = new(PositiveSelection.First, NegativeSelection.Random, ContrastiveWeight: 0, StableDistill: true),
                ["convsearch"] = new(PositiveSelection.First, NegativeSelection.Random, DistillWeight: 0, StableDistill: false),
                ["chat"] = new(PositiveSelection.Teacher, NegativeSelection.Random, ContrastiveWeight: 0, DistillWeight: 1.0,
                    TeacherTemperature: 0.1, StableDistill: false),
                ["lrlm"] = new(PositiveSelection.Teacher, NegativeSelection.Random, MaxSampleNum: 10000, TeacherScoresMargin: 0.1,
                    ContrastiveWeight: 0, DistillWeight: 1.0, TeacherTemperature: 0.1, StableDistill: false),
                ["icl"] = new(PositiveSelection.Random, NegativeSelection.Random, ContrastiveWeight: 0, StableDistill: true),
                ["tool"] = new(PositiveSelection.First, NegativeSelection.Random, DistillWeight: 0, StableDistill: false),
            });
        // The Chinese recipe in README.md; built in so the recipe runs without a file.
        yield return new InstructionVersion("zh_llm_embedder",
            new Dictionary<string, Instruction> { ["icl"] = new("为这个句子生成表示以用于检索相关文章: ", "") });
    }
}

/// <summary>
/// Reads an --instruction_file: {"version": {"instruction": {"task": {"query": "...", "key": "..."}, "*": {...}},
/// "training": {"task": {"select_positive": "random", "contrastive_weight": 0, ...}}}}. Task "*" is the
/// instruction for any task not listed. Unknown fields are errors, so a typo cannot silently drop a prefix.
/// </summary>
internal static class InstructionFile
{
    public const string AnyTask = "*";

    public static IReadOnlyList<InstructionVersion> Read(string path, TextEncoding? encoding = null)
    {
        if (!File.Exists(path))
            throw new EmbedderException($"{path}: instruction file not found");
        var text = TextFile.ReadAllText(path, encoding);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not valid JSON (line {e.LineNumber + 1}: {FirstSentence(e.Message)})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new EmbedderException($"{path}: expected a JSON object of versions, like {{\"zh_llm_embedder\": {{\"instruction\": {{...}}}}}}");
            var versions = new List<InstructionVersion>();
            foreach (var version in root.EnumerateObject())
                versions.Add(ReadVersion(path, version));
            if (versions.Count == 0)
                throw new EmbedderException($"{path}: no versions defined");
            return versions;
        }
    }

    private static InstructionVersion ReadVersion(string path, JsonProperty version)
    {
        var where = version.Name;
        var body = RequireObject(path, where, version.Value);
        Dictionary<string, Instruction> instructions = new(StringComparer.Ordinal);
        Instruction? anyTask = null;
        Dictionary<string, TaskTrainingOverrides>? training = null;
        foreach (var section in body.EnumerateObject())
        {
            switch (section.Name)
            {
                case "instruction":
                    foreach (var task in RequireObject(path, $"{where}.instruction", section.Value).EnumerateObject())
                    {
                        var instruction = ReadInstruction(path, $"{where}.instruction.{task.Name}", task.Value);
                        if (task.Name == AnyTask) anyTask = instruction;
                        else instructions[task.Name] = instruction;
                    }
                    break;
                case "training":
                    training = new Dictionary<string, TaskTrainingOverrides>(StringComparer.Ordinal);
                    foreach (var task in RequireObject(path, $"{where}.training", section.Value).EnumerateObject())
                        training[task.Name] = ReadOverrides(path, $"{where}.training.{task.Name}", task.Value);
                    break;
                default:
                    throw new EmbedderException($"{path}: {where}: unknown section \"{section.Name}\" (expected \"instruction\" and/or \"training\")");
            }
        }
        if (instructions.Count == 0 && anyTask is null)
            throw new EmbedderException($"{path}: {where}: no \"instruction\" entries");
        return new InstructionVersion(version.Name, instructions, anyTask, training);
    }

    private static Instruction ReadInstruction(string path, string where, JsonElement element)
    {
        string query = "", key = "";
        foreach (var field in RequireObject(path, where, element).EnumerateObject())
        {
            if (field.Value.ValueKind != JsonValueKind.String)
                throw new EmbedderException($"{path}: {where}.{field.Name}: expected a string");
            switch (field.Name)
            {
                case "query": query = field.Value.GetString()!; break;
                case "key": key = field.Value.GetString()!; break;
                default: throw new EmbedderException($"{path}: {where}: unknown field \"{field.Name}\" (expected \"query\" and \"key\")");
            }
        }
        return new Instruction(query, key);
    }

    private static TaskTrainingOverrides ReadOverrides(string path, string where, JsonElement element)
    {
        var overrides = new TaskTrainingOverrides();
        foreach (var field in RequireObject(path, where, element).EnumerateObject())
        {
            var value = field.Value;
            var at = $"{path}: {where}.{field.Name}";
            if (value.ValueKind == JsonValueKind.Null)
            {
                if (!TaskTrainingOverrides.JsonFieldNames.Contains(field.Name))
                    throw UnknownSetting(path, where, field.Name);
                continue;
            }
            overrides = field.Name switch
            {
                "select_positive" => overrides with
                {
                    SelectPositive = SelectionNames.TryParsePositive(String(at, value), out var p) ? p
                        : throw new EmbedderException($"{at}: \"{value.GetString()}\" is not one of {string.Join(" | ", SelectionNames.PositiveNames)}"),
                },
                "select_negative" => overrides with
                {
                    SelectNegative = SelectionNames.TryParseNegative(String(at, value), out var n) ? n
                        : throw new EmbedderException($"{at}: \"{value.GetString()}\" is not one of {string.Join(" | ", SelectionNames.NegativeNames)}"),
                },
                "max_sample_num" => overrides with
                {
                    MaxSampleNum = value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n > 0 ? n
                        : throw new EmbedderException($"{at}: expected a positive integer"),
                },
                "teacher_scores_margin" => overrides with { TeacherScoresMargin = Number(at, value, field.Name) },
                "teacher_scores_min" => overrides with { TeacherScoresMin = Number(at, value, field.Name) },
                "contrastive_weight" => overrides with { ContrastiveWeight = Number(at, value, field.Name) },
                "distill_weight" => overrides with { DistillWeight = Number(at, value, field.Name) },
                "teacher_temperature" => overrides with { TeacherTemperature = Number(at, value, field.Name) },
                "student_temperature" => overrides with { StudentTemperature = Number(at, value, field.Name) },
                "stable_distill" => overrides with
                {
                    StableDistill = value.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw new EmbedderException($"{at}: expected true or false"),
                    },
                },
                _ => throw UnknownSetting(path, where, field.Name),
            };
        }
        return overrides;
    }

    private static EmbedderException UnknownSetting(string path, string where, string name) =>
        new($"{path}: {where}: unknown setting \"{name}\" (known: {string.Join(", ", TaskTrainingOverrides.JsonFieldNames)})");

    private static JsonElement RequireObject(string path, string where, JsonElement element) =>
        element.ValueKind == JsonValueKind.Object ? element : throw new EmbedderException($"{path}: {where}: expected a JSON object");

    private static string String(string at, JsonElement value) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new EmbedderException($"{at}: expected a string");

    /// <summary>A number within the range of the flag of the same name, which it overrides for one task.</summary>
    private static double Number(string at, JsonElement value, string flag)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
            throw new EmbedderException($"{at}: expected a number");
        if (ArgumentRanges.Problem(number, ArgumentRanges.OfFlag<Training.TrainingArguments>(flag), isInteger: false) is { } problem)
            throw new EmbedderException($"{at}: {problem}");
        return number;
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).TrimEnd();
    }
}
