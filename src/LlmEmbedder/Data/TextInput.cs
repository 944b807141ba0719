using System.Text.Json;

namespace LlmEmbedder.Data;

/// <summary>Texts to embed: one per line of a .txt file (split on '\n' only), or the "text" field of each .jsonl row.</summary>
public static class TextInput
{
    /// <summary>Lines split on '\n' only (not '\r' or U+2028); a final newline ends the last line rather than starting an empty one.</summary>
    public static string[] SplitLines(string content)
    {
        var lines = content.Split('\n');
        return lines.Length > 0 && lines[^1].Length == 0 ? lines[..^1] : lines;
    }

    public static List<string> Read(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: input file not found");
        var lines = SplitLines(File.ReadAllText(path));
        if (lines.Length == 0) throw new EmbedderException($"{path}: input file is empty (no texts)");
        if (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) return [.. lines];

        var texts = new List<string>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
                throw EmbedderException.AtLine(path, i + 1, "empty line (every line must be a JSON object with a \"text\" field)");
            try
            {
                using var row = JsonDocument.Parse(lines[i]);
                if (row.RootElement.ValueKind != JsonValueKind.Object)
                    throw EmbedderException.AtLine(path, i + 1, "not a JSON object");
                if (!row.RootElement.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                    throw EmbedderException.AtLine(path, i + 1, "no \"text\" string field");
                texts.Add(text.GetString()!);
            }
            catch (JsonException e)
            {
                throw EmbedderException.AtLine(path, i + 1, $"malformed JSON ({e.Message})");
            }
        }
        return texts;
    }
}
