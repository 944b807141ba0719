using System.Text.Json;
using LlmEmbedder.Data;

namespace LlmEmbedder;

/// <summary>Reads a JSONL file one object per line, turning every malformed line into a "file:line: what" error.</summary>
internal static class JsonlFile
{
    /// <summary>Calls <paramref name="onRow"/> with the 1-based line number and the row (valid only during the call).</summary>
    public static void ForEachObject(string path, Action<long, JsonElement> onRow, TextEncoding? encoding = null)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: file not found");
        long line = 0;
        foreach (var text in TextFile.ReadLines(path, encoding))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
                throw EmbedderException.AtLine(path, line, "empty line (every line must be a JSON object)");
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(text);
            }
            catch (JsonException e)
            {
                throw EmbedderException.AtLine(path, line, $"malformed JSON ({e.Message})");
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw EmbedderException.AtLine(path, line, $"expected a JSON object, found {Kind(document.RootElement)}");
                onRow(line, document.RootElement);
            }
        }
    }

    /// <summary>"an array", "a number", ...: what a JSON value is, for error messages.</summary>
    public static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>A required string field.</summary>
    public static string RequiredString(JsonElement row, string name, string path, long line)
    {
        if (!row.TryGetProperty(name, out var value))
            throw EmbedderException.AtLine(path, line, $"no \"{name}\" field");
        if (value.ValueKind != JsonValueKind.String)
            throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a string, found {Kind(value)}");
        return value.GetString()!;
    }

    /// <summary>An identifier that may be written as a JSON string or an integer; returns its text and whether it was a number.</summary>
    public static (string Text, bool IsNumber) Identifier(JsonElement value, string name, string path, long line) => value.ValueKind switch
    {
        JsonValueKind.String => (value.GetString()!, false),
        JsonValueKind.Number when value.TryGetInt64(out var number) => (number.ToString(System.Globalization.CultureInfo.InvariantCulture), true),
        _ => throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a string or an integer, found {value.GetRawText()}"),
    };
}
