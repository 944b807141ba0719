using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmEmbedder;

/// <summary>Reads a whole JSON file (config, args.json, encoder spec, module configs) with one error wording.</summary>
public static class JsonFile
{
    /// <summary>The file's root object; "{path}: file not found" or "{path}: not valid JSON (...)" otherwise.</summary>
    public static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: file not found");
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }) as JsonObject
                ?? throw new EmbedderException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not valid JSON (line {e.LineNumber + 1}: {FirstSentence(e.Message)})");
        }
    }

    /// <summary>The file's root, which may be any JSON value (modules.json is an array).</summary>
    public static JsonNode ReadNode(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: file not found");
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(path)) ?? throw new EmbedderException($"{path}: empty JSON");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not valid JSON (line {e.LineNumber + 1}: {FirstSentence(e.Message)})");
        }
    }

    /// <summary>System.Text.Json's message without its "LineNumber: ... BytePositionInLine" tail.</summary>
    public static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).TrimEnd();
    }
}

/// <summary>How we write JSON that people read: non-ASCII (Chinese instructions) kept as is.</summary>
public static class JsonFormatting
{
    private static readonly JavaScriptEncoder KeepNonAscii = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    /// <summary>A JSON file: two-space indent, as transformers and sentence-transformers write theirs.</summary>
    public static readonly JsonSerializerOptions TwoSpaces = new() { WriteIndented = true, IndentSize = 2, Encoder = KeepNonAscii };

    /// <summary>A JSONL row: one line.</summary>
    public static readonly JsonSerializerOptions OneLine = new() { Encoder = KeepNonAscii };
}

/// <summary>
/// Reads the fields of one JSON object strictly: a missing or mistyped field, or one that is not read at all (a typo),
/// is an error naming the file and the field.
/// </summary>
public sealed class JsonFields(JsonObject json, string path, string prefix = "")
{
    private readonly HashSet<string> read = new(StringComparer.Ordinal);

    private JsonNode? Get(string name)
    {
        read.Add(name);
        return json[name];
    }

    private EmbedderException Wrong(string name, string expected) => new($"{path}: {prefix}{name}: expected {expected}");

    public string String(string name) =>
        Get(name) is JsonValue value && value.TryGetValue<string>(out var text) ? text : throw Wrong(name, "a string");

    public string? OptionalString(string name) => Get(name) switch
    {
        null => null,
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        _ => throw Wrong(name, "a string or null"),
    };

    public int Int(string name) =>
        Get(name) is JsonValue value && value.TryGetValue<int>(out var number) ? number : throw Wrong(name, "an integer");

    public bool Bool(string name) =>
        Get(name) is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : throw Wrong(name, "true or false");

    public JsonObject Object(string name) => Get(name) as JsonObject ?? throw Wrong(name, "an object");

    /// <summary>Null when the field is absent or null.</summary>
    public int[]? OptionalIntArray(string name) => Get(name) switch
    {
        null => null,
        JsonArray items when items.All(i => i is JsonValue v && v.TryGetValue<int>(out _)) => items.Select(i => i!.GetValue<int>()).ToArray(),
        _ => throw Wrong(name, "a list of integers or null"),
    };

    /// <summary>A string field turned into a value by <paramref name="parse"/>, whose error is prefixed with the file and field.</summary>
    public T Parse<T>(string name, Func<string, T> parse)
    {
        var text = String(name);
        try
        {
            return parse(text);
        }
        catch (EmbedderException e)
        {
            throw new EmbedderException($"{path}: {prefix}{name}: {e.Message}");
        }
    }

    public void RejectUnknown()
    {
        if (json.Select(p => p.Key).FirstOrDefault(k => !read.Contains(k)) is { } unknown)
            throw new EmbedderException($"{path}: {prefix}{unknown}: unknown field");
    }
}
