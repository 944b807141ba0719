namespace LlmEmbedder.Data;

/// <summary>
/// Texts to embed: one per line of a .txt file (lines as <see cref="TextFile"/> splits them), or the "text" field of
/// each .jsonl row; strictly decoded in the --encoding given (UTF-8 by default).
/// </summary>
public static class TextInput
{
    public static List<string> Read(string path, TextEncoding? encoding = null)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: input file not found");
        var texts = new List<string>();
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
            JsonlFile.ForEachObject(path, (line, row) => texts.Add(JsonlFile.RequiredString(row, "text", path, line)), encoding);
        else
            texts.AddRange(TextFile.ReadLines(path, encoding));
        if (texts.Count == 0) throw new EmbedderException($"{path}: input file is empty (no texts)");
        return texts;
    }
}
