using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>
/// What args.json (written beside encoder/ by training, ours or run_dense.py's) says about how a model was made:
/// {"model_args": {...}, "training_args": {...}}. Every field is optional: a folder without args.json exports too.
/// </summary>
public sealed record TrainingRunInfo(string Path, JsonObject ModelArgs, JsonObject TrainingArgs)
{
    public const string FileName = "args.json";

    /// <summary>The training arguments a model card shows, in this order, when present.</summary>
    public static readonly IReadOnlyList<string> CardHyperParameters =
    [
        "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
        "train_group_size", "cos_temperature", "contrastive_weight", "distill_weight", "stable_distill",
        "teacher_temperature", "student_temperature", "select_positive", "select_negative", "inbatch_same_dataset",
        "negative_cross_device", "warmup_ratio", "weight_decay", "max_grad_norm", "seed",
    ];

    /// <summary>Model arguments that describe the encoder and its data, shown with the hyper-parameters.</summary>
    public static readonly IReadOnlyList<string> CardModelArguments =
        ["version", "add_instruction", "query_max_length", "key_max_length", "pooling_method", "dense_metric", "dtype"];

    /// <summary>Null when the file does not exist.</summary>
    public static TrainingRunInfo? TryRead(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))?.AsObject()
                ?? throw new EmbedderException($"{path}: expected a JSON object");
            return new TrainingRunInfo(path,
                root["model_args"] as JsonObject ?? [],
                root["training_args"] as JsonObject ?? []);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new EmbedderException($"{path}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>The model training started from (--query_encoder).</summary>
    public string? BaseModel => String(ModelArgs, "query_encoder");

    public IReadOnlyList<string> TrainData => ModelArgs["train_data"] switch
    {
        JsonArray list => list.Select(item => item?.ToString()).OfType<string>().ToArray(),
        JsonValue value => [value.ToString()],
        _ => [],
    };

    public string? Version => String(ModelArgs, "version");
    public string? InstructionFile => String(ModelArgs, "instruction_file");
    public bool? AddInstruction => ModelArgs["add_instruction"] is JsonValue value && value.TryGetValue<bool>(out var add) ? add : null;
    public string? DenseMetric => String(ModelArgs, "dense_metric");

    /// <summary>--pooling_method as a list (the reference's form, e.g. ["cls", "dense"]); a plain string counts as one entry.</summary>
    public IReadOnlyList<string> PoolingMethod => ModelArgs["pooling_method"] switch
    {
        JsonArray list => list.Select(item => item?.ToString()).OfType<string>().ToArray(),
        JsonValue value => [value.ToString()],
        _ => [],
    };

    /// <summary>(name, value as text) of the entries of <paramref name="names"/> present in <paramref name="arguments"/>.</summary>
    public static IEnumerable<(string Name, string Value)> Present(JsonObject arguments, IEnumerable<string> names)
    {
        foreach (var name in names)
            if (arguments[name] is { } value)
                yield return (name, Format(value));
    }

    private static string Format(JsonNode value) => value switch
    {
        JsonArray list => string.Join(", ", list.Select(item => item is null ? "null" : Format(item))),
        JsonValue scalar when scalar.TryGetValue<double>(out var number) => number.ToString("G", CultureInfo.InvariantCulture).Replace('E', 'e'),
        JsonValue scalar when scalar.TryGetValue<bool>(out var flag) => flag ? "true" : "false",
        _ => value.ToString(),
    };

    private static string? String(JsonObject arguments, string name) =>
        arguments[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;
}
