using System.Text.Json.Nodes;
using LlmEmbedder.Data;

namespace LlmEmbedder.Retrieval.Scoring;

/// <summary>What a scoring run wrote.</summary>
/// <param name="ScoresReplaced">Rows that already had teacher_scores (now the scorer's).</param>
public sealed record TeacherScoringResult(int Rows, int Pairs, int ScoresReplaced);

/// <summary>
/// Adds teacher_scores to training JSONL (FlagEmbedding's add_reranker_score): for every row, the scorer's score of
/// (query, text) for each positive, then each negative (for a chat row, each history entry), in the order the
/// trainer reads them (docs/REFERENCE.md §2). Every other field is kept; rows are checked as training checks them.
/// </summary>
public static class TeacherScoring
{
    public const string Field = "teacher_scores";

    public static TeacherScoringResult Run(IPairScorer scorer, string inputFile, string outputFile, TextEncoding? encoding = null,
        IProgress<ScoringProgress>? progress = null)
    {
        var rows = new List<(JsonObject Json, PairGroup Group)>();
        int replaced = 0;
        JsonlFile.ForEachObject(inputFile, (line, element) =>
        {
            var json = JsonNode.Parse(element.GetRawText())!.AsObject();
            // The old scores are replaced, so they are not checked against the texts.
            if (json.Remove(Field)) replaced++;
            var row = TrainingJsonl.ParseRow(inputFile, line, json.ToJsonString());
            rows.Add((json, new PairGroup(row.Query, [.. row.Pos, .. row.Neg])));
        }, encoding);
        if (rows.Count == 0) throw new EmbedderException($"{inputFile}: no rows (the file is empty)");

        var scores = scorer.Score(rows.Select(r => r.Group).ToList(), progress);
        for (int r = 0; r < rows.Count; r++)
            if (Array.FindIndex(scores[r], s => !float.IsFinite(s)) is var bad and >= 0)
                throw EmbedderException.AtLine(inputFile, r + 1, $"the score of \"{rows[r].Group.Texts[bad]}\" is {scores[r][bad]} (the model gives non-finite scores)");
        FileUtil.WriteAtomic(outputFile, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false));
            for (int r = 0; r < rows.Count; r++)
            {
                var json = rows[r].Json;
                json[Field] = new JsonArray(scores[r].Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
                writer.Write(json.ToJsonString(JsonFormatting.OneLine));
                writer.Write('\n');
            }
        });
        return new TeacherScoringResult(rows.Count, rows.Sum(r => r.Group.Texts.Count), replaced);
    }
}
