using System.Text.Json.Nodes;
using LlmEmbedder.Data;

namespace LlmEmbedder.Modeling;

/// <summary>Which side of retrieval a text is on: it picks the instruction and the max length.</summary>
public enum EmbeddingRole
{
    Query,
    Key,
}

/// <summary>The precision the encoder's BERT runs in at inference (pooling, the Dense layer and the output stay fp32).</summary>
public enum InferenceDtype
{
    Float32,
    BFloat16,
}

/// <summary>
/// Everything that decides how a text becomes a vector: pooling, the dense pooler on top, the metric (and so
/// normalisation and similarity), the instruction of each task and role, the max lengths and the inference dtype.
/// Training writes it into every encoder folder (<see cref="FileName"/>); every command reads it back, so a model is
/// never used differently from how it was trained. Flags may override it (<see cref="Override"/>).
/// </summary>
public sealed record EncoderSpec
{
    public const string FileName = "encoder_spec.json";
    private const int FormatVersion = 1;

    public PoolingMethod Pooling { get; init; } = PoolingMethod.Cls;

    /// <summary>A projection after pooling: the reference's dense pooler (dense_pooler.bin), or a sentence-transformers Dense module.</summary>
    public bool Dense { get; init; }

    public DenseMetric Metric { get; init; } = DenseMetric.Cos;
    public EncoderInstructions Instructions { get; init; } = EncoderInstructions.None;
    public int QueryMaxLength { get; init; } = 512;
    public int KeyMaxLength { get; init; } = 512;
    public InferenceDtype Dtype { get; init; } = InferenceDtype.Float32;

    /// <summary>
    /// The embedding sizes Matryoshka training (--matryoshka_dims) taught, largest first; null when it was not used.
    /// Any size can be asked for at inference (--dimensions: the first N dimensions, normalised again for cos); these
    /// are the ones the loss optimised.
    /// </summary>
    public IReadOnlyList<int>? MatryoshkaDims { get; init; }

    public bool Normalize => Metric.Normalizes();

    public int MaxLength(EmbeddingRole role) => role == EmbeddingRole.Query ? QueryMaxLength : KeyMaxLength;

    /// <summary>The spec of a folder that says nothing: CLS, cosine, no instruction, 512 tokens or the model's positions.</summary>
    public static EncoderSpec Default(BertConfig config) => new()
    {
        QueryMaxLength = Math.Min(512, config.MaxPositionEmbeddings),
        KeyMaxLength = Math.Min(512, config.MaxPositionEmbeddings),
    };

    /// <summary>Rejects max lengths the model cannot take.</summary>
    public EncoderSpec ValidatedFor(BertConfig config)
    {
        foreach (var (name, value) in new[] { ("query max length", QueryMaxLength), ("key max length", KeyMaxLength) })
            if (value < 2 || value > config.MaxPositionEmbeddings)
                throw new EmbedderException($"{name} {value} must be between 2 and the model's {config.MaxPositionEmbeddings} positions");
        return this;
    }

    /// <summary>
    /// This spec with the flags a user gave (null: not given). <paramref name="changes"/> lists each flag whose value
    /// differs from the spec ("pooling mean → cls"), so the command can say in one line that it overrides the model.
    /// </summary>
    public EncoderSpec Override(EncoderSpecOverrides flags, out IReadOnlyList<string> changes)
    {
        var changed = new List<string>();
        var result = this;
        void Note(string what, string from, string to)
        {
            if (from != to) changed.Add($"{what} {from} → {to}");
        }
        if (flags.Pooling is { } pooling)
        {
            Note("pooling", Pooling.Name(), pooling.Name());
            result = result with { Pooling = pooling };
        }
        if (flags.Metric is { } metric)
        {
            Note("dense_metric", Metric.Name(), metric.Name());
            result = result with { Metric = metric };
        }
        if (flags.MaxLength is { } maxLength)
        {
            if (QueryMaxLength != maxLength || KeyMaxLength != maxLength)
                changed.Add($"max length {(QueryMaxLength == KeyMaxLength ? $"{QueryMaxLength}" : $"{QueryMaxLength}/{KeyMaxLength}")} → {maxLength}");
            result = result with { QueryMaxLength = maxLength, KeyMaxLength = maxLength };
        }
        if (flags.Dtype is { } dtype)
        {
            Note("dtype", DtypeName(Dtype), DtypeName(dtype));
            result = result with { Dtype = dtype };
        }
        // The spec holds its version's instructions: restating that version alone needs no file and changes nothing.
        if ((flags.Version is not null && flags.Version != Instructions.Version) || flags.InstructionFile is not null)
        {
            var version = flags.Version ?? Instructions.Version
                ?? throw new EmbedderException("--instruction_file needs --version (the model records no instruction version)");
            var set = flags.InstructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(flags.InstructionFile, flags.InstructionFileEncoding);
            var chosen = set.Get(version);
            // The model's own version keeps the model's tasks (a one-task model stays one-task); another version brings all of its own.
            var tasks = version == Instructions.Version && Instructions.Tasks.Keys.All(t => chosen.Instructions.ContainsKey(t) || chosen.AnyTaskInstruction is not null)
                ? Instructions.Tasks.Keys
                : null;
            var instructions = EncoderInstructions.FromVersion(chosen, flags.InstructionFile ?? Instructions.InstructionFile, tasks);
            if (!instructions.SameTexts(Instructions))
                changed.Add($"instructions {Instructions.Version ?? "none"} → {version}{(version == Instructions.Version ? " (other texts)" : "")}");
            result = result with { Instructions = instructions };
        }
        changes = changed;
        return result;
    }

    public static string DtypeName(InferenceDtype dtype) => dtype == InferenceDtype.BFloat16 ? "bf16" : "fp32";

    public static InferenceDtype ParseDtype(string name) => name switch
    {
        "fp32" or "float32" => InferenceDtype.Float32,
        "bf16" or "bfloat16" => InferenceDtype.BFloat16,
        _ => throw new EmbedderException($"dtype '{name}': expected fp32 or bf16"),
    };

    public void Save(string encoderDir) =>
        FileUtil.WriteAllTextAtomic(Path.Combine(encoderDir, FileName), ToJson().ToJsonString(JsonFormatting.TwoSpaces) + "\n");

    /// <summary>The folder's encoder_spec.json, or null when it has none.</summary>
    public static EncoderSpec? TryLoad(string encoderDir)
    {
        var path = Path.Combine(encoderDir, FileName);
        return File.Exists(path) ? FromJson(JsonFile.ReadObject(path), path) : null;
    }

    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["pooling"] = Pooling.Name(),
            ["dense"] = Dense,
            ["dense_metric"] = Metric.Name(),
            ["normalize"] = Normalize,
            ["similarity_fn_name"] = Metric.SimilarityFunctionName(),
            ["query_max_length"] = QueryMaxLength,
            ["key_max_length"] = KeyMaxLength,
            ["dtype"] = DtypeName(Dtype),
            ["instructions"] = Instructions.ToJson(),
        };
        // Written only when used, so a spec without it stays readable by builds that do not know the field.
        if (MatryoshkaDims is { } dims) json["matryoshka_dims"] = new JsonArray(dims.Select(d => (JsonNode)d).ToArray());
        return json;
    }

    public static EncoderSpec FromJson(JsonObject json, string path)
    {
        var reader = new JsonFields(json, path);
        if (reader.Int("format_version") is var format && format != FormatVersion)
            throw new EmbedderException($"{path}: format_version {format} is not supported (this build reads {FormatVersion}); use a newer llm-embedder");
        var spec = new EncoderSpec
        {
            Pooling = reader.Parse("pooling", Modeling.Pooling.Parse),
            Dense = reader.Bool("dense"),
            Metric = reader.Parse("dense_metric", DenseMetrics.Parse),
            QueryMaxLength = reader.Int("query_max_length"),
            KeyMaxLength = reader.Int("key_max_length"),
            Dtype = reader.Parse("dtype", ParseDtype),
            Instructions = EncoderInstructions.FromJson(reader.Object("instructions"), path),
            MatryoshkaDims = reader.OptionalIntArray("matryoshka_dims"),
        };
        // Derived fields are written for people and other tools; they must agree with what they derive from.
        if (reader.Bool("normalize") != spec.Normalize)
            throw new EmbedderException($"{path}: normalize must be {(spec.Normalize ? "true" : "false")} for dense_metric {spec.Metric.Name()}");
        if (reader.String("similarity_fn_name") != spec.Metric.SimilarityFunctionName())
            throw new EmbedderException($"{path}: similarity_fn_name must be \"{spec.Metric.SimilarityFunctionName()}\" for dense_metric {spec.Metric.Name()}");
        reader.RejectUnknown();
        return spec;
    }
}

/// <summary>The flags of encode, eval, mine, export and serve that override a model's spec; null = not given.</summary>
public sealed record EncoderSpecOverrides(
    PoolingMethod? Pooling = null, DenseMetric? Metric = null, int? MaxLength = null, InferenceDtype? Dtype = null,
    string? Version = null, string? InstructionFile = null, TextEncoding? InstructionFileEncoding = null);

/// <summary>
/// The instruction of each task (query and key prefixes) and the version and file they came from. Task
/// <see cref="AnyTask"/> holds a version's instruction for any task (bge, e5).
/// </summary>
public sealed record EncoderInstructions(string? Version, string? InstructionFile, IReadOnlyDictionary<string, Instruction> Tasks)
{
    public const string AnyTask = "*";

    public static EncoderInstructions None { get; } = new(null, null, new Dictionary<string, Instruction>());

    public static Instruction NoInstruction { get; } = new("", "");

    /// <summary>The instructions of <paramref name="version"/>: of <paramref name="tasks"/> only, or all it has.</summary>
    public static EncoderInstructions FromVersion(InstructionVersion version, string? instructionFile, IEnumerable<string>? tasks = null)
    {
        var table = new SortedDictionary<string, Instruction>(StringComparer.Ordinal);
        if (tasks is not null)
        {
            foreach (var task in tasks) table[task] = version.InstructionFor(task);
        }
        else
        {
            foreach (var (task, instruction) in version.Instructions) table[task] = instruction;
            if (version.AnyTaskInstruction is { } any) table[AnyTask] = any;
        }
        return new EncoderInstructions(version.Name, instructionFile is null ? null : Path.GetFileName(instructionFile), table);
    }

    /// <summary>
    /// The one rule every command follows: --task T gives T's instruction; without --task, a model with one task uses
    /// that one; a model with several needs --task; a model without instructions uses none.
    /// </summary>
    /// <param name="taskSource">Where the task came from, for the error: "--task" (the user asked for it), or e.g. the eval
    /// file's first row, which picks an instruction when the model has them and is ignored when it has none.</param>
    /// <param name="howToChoose">How the user names a task, for the errors: "with --task", or the server's request field.</param>
    public Instruction For(string? task, string taskSource = "--task", string howToChoose = "with --task")
    {
        if (Tasks.Count == 0)
        {
            if (task is not null && taskSource == "--task")
                throw new EmbedderException($"--task {task}: the model has no instructions (add some with --version)");
            return NoInstruction;
        }
        if (task is not null)
        {
            if (Tasks.TryGetValue(task, out var found) || Tasks.TryGetValue(AnyTask, out found)) return found;
            throw new EmbedderException($"{taskSource} \"{task}\": the model has no instruction for it (tasks: {TaskList}); choose one {howToChoose}");
        }
        if (Tasks.Count == 1) return Tasks.Values.Single();
        throw new EmbedderException($"the model has an instruction per task ({TaskList}); say which {howToChoose}");
    }

    private string TaskList => string.Join(", ", Tasks.Keys.Order(StringComparer.Ordinal));

    /// <summary>Whether both give every task the same query and key prefixes (versions and files aside).</summary>
    public bool SameTexts(EncoderInstructions other) =>
        Tasks.Count == other.Tasks.Count && Tasks.All(t => other.Tasks.TryGetValue(t.Key, out var instruction) && instruction == t.Value);

    public JsonObject ToJson()
    {
        var tasks = new JsonObject();
        foreach (var (task, instruction) in Tasks.OrderBy(t => t.Key, StringComparer.Ordinal))
            tasks[task] = new JsonObject { ["query"] = instruction.Query, ["key"] = instruction.Key };
        return new JsonObject { ["version"] = Version, ["instruction_file"] = InstructionFile, ["tasks"] = tasks };
    }

    public static EncoderInstructions FromJson(JsonObject json, string path)
    {
        var reader = new JsonFields(json, path, "instructions.");
        var version = reader.OptionalString("version");
        var file = reader.OptionalString("instruction_file");
        var table = new SortedDictionary<string, Instruction>(StringComparer.Ordinal);
        foreach (var (task, value) in reader.Object("tasks"))
        {
            var entry = new JsonFields(value as JsonObject ?? throw new EmbedderException($"{path}: instructions.tasks.{task}: expected an object"),
                path, $"instructions.tasks.{task}.");
            table[task] = new Instruction(entry.String("query"), entry.String("key"));
            entry.RejectUnknown();
        }
        reader.RejectUnknown();
        return new EncoderInstructions(version, file, table);
    }
}
