using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Training;

/// <summary>
/// args.json beside encoder/: {"model_args": {...}, "training_args": {...}}, written by every training run (ours or
/// run_dense.py's) and read back as the same typed records, so a renamed property cannot silently drop out of what
/// is read. Fields this build does not know (Hugging Face's many TrainingArguments) are ignored.
/// </summary>
public sealed record RunArguments(ModelArguments Model, TrainingArguments Training)
{
    public const string FileName = "args.json";

    private static readonly JsonSerializerOptions SnakeCase = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => new JsonObject
    {
        ["model_args"] = JsonSerializer.SerializeToNode(Model, SnakeCase),
        ["training_args"] = JsonSerializer.SerializeToNode(Training, SnakeCase),
    }.ToJsonString(SnakeCase) + "\n";

    /// <summary>Every flag within its declared range (<see cref="ArgumentRangeAttribute"/>) and the rules between flags.</summary>
    public void Validate()
    {
        Model.Validate();
        Training.Validate();
    }

    public void Save(string path) => FileUtil.WriteAllTextAtomic(path, ToJson());

    /// <summary>Null when the file does not exist.</summary>
    public static RunArguments? TryRead(string path)
    {
        if (!File.Exists(path)) return null;
        var root = JsonFile.ReadObject(path);
        return new RunArguments(
            ReadRecord<ModelArguments>(root["model_args"] as JsonObject ?? []),
            ReadRecord<TrainingArguments>(root["training_args"] as JsonObject ?? []));
    }

    /// <summary>The flag name of a property (run_dense.py's name): its snake_case.</summary>
    public static string FlagName(string propertyName) => JsonNamingPolicy.SnakeCaseLower.ConvertName(propertyName);

    /// <summary>(flag name, value as text) of the named properties, for a model card.</summary>
    public static IEnumerable<(string Name, string Value)> Describe<T>(T arguments, IEnumerable<string> propertyNames)
    {
        foreach (var name in propertyNames)
        {
            var property = typeof(T).GetProperty(name) ?? throw new ArgumentException($"{typeof(T).Name} has no property {name}");
            if (property.GetValue(arguments) is { } value) yield return (FlagName(name), Format(value));
        }
    }

    private static string Format(object value) => value switch
    {
        string text => text,
        bool flag => flag ? "true" : "false",
        double number => number.ToString("G", CultureInfo.InvariantCulture).Replace('E', 'e'),
        System.Collections.IEnumerable list => string.Join(", ", list.Cast<object>().Select(Format)),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>
    /// Each property from its snake_case field, when present and of a usable type; a single string where a list is
    /// expected counts as a list of one (run_dense.py accepts both). Anything else keeps the record's default.
    /// </summary>
    private static T ReadRecord<T>(JsonObject json) where T : new()
    {
        var result = new T();
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (json[FlagName(property.Name)] is not { } node) continue;
            try
            {
                var value = property.PropertyType == typeof(string[]) && node is JsonValue single && single.TryGetValue<string>(out var text)
                    ? new[] { text }
                    : node.Deserialize(property.PropertyType, SnakeCase);
                property.SetValue(result, value);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
            {
                // A field of another type (another tool's args.json) tells nothing this build can use.
            }
        }
        return result;
    }
}

public static class ModelArgumentsSpec
{
    /// <summary>
    /// How a model trained with these arguments turns text into vectors: --pooling_method (mean wins over cls, as in
    /// the reference; dense projects whichever was pooled), --dense_metric, the instructions of
    /// <paramref name="tasks"/> (all of the version's when null: an args.json without its data), the max lengths.
    /// The single place where these flags are parsed.
    /// </summary>
    public static EncoderSpec ToEncoderSpec(this ModelArguments args, IEnumerable<string>? tasks)
    {
        var unknown = args.PoolingMethod.Length == 0 ? "" : args.PoolingMethod.FirstOrDefault(p => p is not ("cls" or "mean" or "dense"));
        if (unknown is not null)
            throw new EmbedderException($"--pooling_method '{unknown}': expected cls or mean, optionally with dense (e.g. --pooling_method cls dense)");
        EncoderInstructions instructions = EncoderInstructions.None;
        if (args.AddInstruction)
        {
            var set = args.InstructionFile is { } file && File.Exists(file)
                ? InstructionSet.BuiltIn.WithFile(file, TextEncoding.Parse(args.Encoding))
                : InstructionSet.BuiltIn;
            if (args.InstructionFile is { } missing && !File.Exists(missing) && tasks is not null)
                throw new EmbedderException($"{missing}: instruction file not found");
            instructions = EncoderInstructions.FromVersion(set.Get(args.Version), args.InstructionFile, tasks);
        }
        return new EncoderSpec
        {
            Pooling = args.PoolingMethod.Contains("mean") ? PoolingMethod.Mean : PoolingMethod.Cls,
            Dense = args.PoolingMethod.Contains("dense"),
            Metric = DenseMetrics.Parse(args.DenseMetric),
            Instructions = instructions,
            QueryMaxLength = args.QueryMaxLength,
            KeyMaxLength = args.KeyMaxLength,
            // Training evaluates, and saves, fp32 master weights: inference as trained is fp32 (--dtype bf16 overrides).
            Dtype = InferenceDtype.Float32,
        };
    }
}
