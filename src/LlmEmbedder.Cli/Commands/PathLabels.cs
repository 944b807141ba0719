namespace LlmEmbedder.Cli.Commands;

/// <summary>Short names for paths in tables and charts: the shortest tails that tell them apart ("arctic/hf", "minilm/hf").</summary>
internal static class PathLabels
{
    public static IReadOnlyList<string> Distinct(IReadOnlyList<string> paths)
    {
        var parts = paths.Select(p => p.TrimEnd('/', '\\').Split('/', '\\')).ToList();
        int longest = parts.Max(p => p.Length);
        for (int count = 1; count <= longest; count++)
        {
            var tails = parts.Select(p => string.Join('/', p.TakeLast(count))).ToList();
            if (tails.Distinct().Count() == tails.Count) return tails;
        }
        return paths.Select((p, i) => $"{p} ({i + 1})").ToList();
    }
}
