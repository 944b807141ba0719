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
            using var document = ParseObject(path, line, text);
            onRow(line, document.RootElement);
        }
    }

    /// <summary>One line parsed as a JSON object (the caller disposes it); malformed JSON or another value is an error at path:line.</summary>
    public static JsonDocument ParseObject(string path, long line, string text)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw EmbedderException.AtLine(path, line, $"malformed JSON at column {CharacterColumn(text, e.BytePositionInLine)}");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            using (document)
                throw EmbedderException.AtLine(path, line, $"expected a JSON object, got {Describe(document.RootElement)}");
        return document;
    }

    /// <summary>The 1-based character column of a UTF-8 byte offset (what an editor shows, also for Chinese text).</summary>
    private static long CharacterColumn(string line, long? byteOffset)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(line);
        var offset = (int)Math.Clamp(byteOffset ?? 0, 0, bytes.Length);
        return System.Text.Encoding.UTF8.GetCharCount(bytes, 0, offset) + 1;
    }

    /// <summary>"a list", "the number 3", "true", ...: what a JSON value is, for error messages.</summary>
    public static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {element.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => element.GetRawText(),
        JsonValueKind.Null => "null",
        _ => element.ValueKind.ToString(),
    };

    /// <summary>A required string field.</summary>
    public static string RequiredString(JsonElement row, string name, string path, long line)
    {
        if (!row.TryGetProperty(name, out var value))
            throw EmbedderException.AtLine(path, line, $"no \"{name}\" field");
        if (value.ValueKind != JsonValueKind.String)
            throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a string, got {Describe(value)}");
        return value.GetString()!;
    }

    /// <summary>A field that must be a list of strings.</summary>
    public static string[] StringList(JsonElement value, string name, string path, long line)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a list of strings, got {Describe(value)}");
        var items = new string[value.GetArrayLength()];
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
                throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a list of strings, item {index} is {Describe(item)}");
            items[index++] = item.GetString()!;
        }
        return items;
    }

    /// <summary>An identifier that may be written as a JSON string or an integer; returns its text and whether it was a number.</summary>
    public static (string Text, bool IsNumber) Identifier(JsonElement value, string name, string path, long line) => value.ValueKind switch
    {
        JsonValueKind.String => (value.GetString()!, false),
        JsonValueKind.Number when value.TryGetInt64(out var number) => (number.ToString(System.Globalization.CultureInfo.InvariantCulture), true),
        _ => throw EmbedderException.AtLine(path, line, $"\"{name}\" must be a string or an integer, found {value.GetRawText()}"),
    };
}
