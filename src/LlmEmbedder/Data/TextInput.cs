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
        var texts = new List<string>();
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
            JsonlFile.ForEachObject(path, (line, row) => texts.Add(JsonlFile.RequiredString(row, "text", path, line)));
        else
            texts.AddRange(SplitLines(File.ReadAllText(path)));
        if (texts.Count == 0) throw new EmbedderException($"{path}: input file is empty (no texts)");
        return texts;
    }
}
