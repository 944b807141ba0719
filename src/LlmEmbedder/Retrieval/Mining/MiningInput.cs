using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;

namespace LlmEmbedder.Retrieval.Mining;

/// <summary>One training row to mine negatives for; <see cref="Json"/> keeps every field, to be written back.</summary>
public sealed record MiningRow(long Line, JsonObject Json, string Query, IReadOnlyList<string> Positives, IReadOnlyList<string> Negatives);

/// <summary>Reads hn_mine's inputs: training JSONL rows {query, pos, neg?, ...} and a candidate pool.</summary>
public static class MiningInput
{
    /// <summary>
    /// Every row of a training JSONL file. <c>query</c> must be a string and <c>pos</c> a list of strings; <c>neg</c>,
    /// when present, a list of strings. Errors name file:line.
    /// </summary>
    public static IReadOnlyList<MiningRow> ReadRows(string path, TextEncoding? encoding = null)
    {
        var rows = new List<MiningRow>();
        JsonlFile.ForEachObject(path, (line, row) =>
        {
            var query = JsonlFile.RequiredString(row, "query", path, line);
            if (!row.TryGetProperty("pos", out var pos))
                throw EmbedderException.AtLine(path, line, "no \"pos\" field (a list of positive texts)");
            var positives = JsonlFile.StringList(pos, "pos", path, line);
            var negatives = row.TryGetProperty("neg", out var neg) && neg.ValueKind != JsonValueKind.Null ? JsonlFile.StringList(neg, "neg", path, line) : [];
            rows.Add(new MiningRow(line, JsonNode.Parse(row.GetRawText())!.AsObject(), query, positives, negatives));
        }, encoding);
        if (rows.Count == 0) throw new EmbedderException($"{path}: no rows (the file is empty)");
        return rows;
    }

    /// <summary>
    /// The candidate pool: the texts of a pool file (JSONL rows with a "text" field, or one text per line), or, when
    /// there is none, every pos and neg of the rows; repeated texts once, in first-seen order.
    /// </summary>
    public static IReadOnlyList<string> ReadPool(string? poolPath, IReadOnlyList<MiningRow> rows, TextEncoding? encoding = null)
    {
        var texts = poolPath is null
            ? rows.SelectMany(r => r.Positives.Concat(r.Negatives))
            : TextInput.Read(poolPath, encoding);
        var pool = texts.Distinct(StringComparer.Ordinal).ToArray();
        if (pool.Length == 0)
            throw new EmbedderException(poolPath is null
                ? "the candidate pool is empty: the input rows have no pos or neg texts (give --candidate_pool)"
                : $"{poolPath}: the candidate pool is empty");
        return pool;
    }
}
