using System.Text.Json;
using System.Text.RegularExpressions;

namespace LlmEmbedder.Data;

/// <summary>A training file read whole, with the rows that were skipped in --skip_bad_rows mode.</summary>
public sealed record TrainingFile(string Path, IReadOnlyList<TrainingRow> Rows, int SkippedRows, string? FirstSkippedError);

/// <summary>
/// Reads training JSONL ({"query", "pos", "neg", "task", "teacher_scores"?, "history"?} per line) with strict
/// validation: every problem is one "file:line: what" message. Also resolves the --train_data entries
/// (the llm-embedder: prefix and glob patterns) to files.
/// </summary>
public static class TrainingJsonl
{
    public const string DataRootPrefix = "llm-embedder:";

    /// <summary>run_dense.py's --data_root default, which llm-embedder: paths are relative to.</summary>
    public const string DefaultDataRoot = "/data/llm-embedder";

    /// <summary>
    /// Turns --train_data entries into files, in order: "llm-embedder:rest" becomes data_root/rest, a
    /// pattern with * or ? expands to its matches sorted by path (also inside a list of entries, which the
    /// reference ignores), and a plain path must exist. An entry listed twice stays twice (up-weighting).
    /// </summary>
    public static IReadOnlyList<string> ResolveTrainData(IEnumerable<string> entries, string dataRoot)
    {
        var files = new List<string>();
        foreach (var entry in entries)
        {
            var path = entry.StartsWith(DataRootPrefix, StringComparison.Ordinal)
                ? Path.Combine(dataRoot, entry[DataRootPrefix.Length..])
                : entry;
            var origin = ReferenceEquals(path, entry) ? "" : $" (from {entry} with --data_root {dataRoot})";
            if (Glob.IsPattern(path))
            {
                var matches = Glob.Expand(path);
                if (matches.Count == 0)
                    throw new EmbedderException($"{path}: no file matches this pattern{origin}");
                files.AddRange(matches);
            }
            else if (File.Exists(path))
                files.Add(path);
            else
                throw new EmbedderException($"{path}: training file not found{origin}");
        }
        return files;
    }

    /// <summary>Reads and validates a whole file. Without <paramref name="skipBadRows"/> the first bad row is an error.</summary>
    public static TrainingFile ReadFile(string path, bool skipBadRows = false, TextEncoding? encoding = null)
    {
        var skipped = 0;
        string? firstSkipped = null;
        Action<EmbedderException>? onBadRow = skipBadRows
            ? error =>
            {
                skipped++;
                firstSkipped ??= error.Message;
            }
            : null;
        var rows = ReadRows(path, onBadRow, encoding).ToList();
        if (rows.Count == 0)
            throw NoRows(path, skipped, firstSkipped);
        return new TrainingFile(path, rows, skipped, firstSkipped);
    }

    /// <summary>
    /// Streams the valid rows of a file. A bad row goes to <paramref name="onBadRow"/> when given (and is
    /// skipped), else it is thrown. Besides each row's own shape, rows must agree with the first valid row
    /// on the task and on having teacher_scores: a batch takes both from the whole dataset. Text that does not decode
    /// in <paramref name="encoding"/> (UTF-8 by default) stops the reading even then: the rest of the file cannot be trusted.
    /// </summary>
    public static IEnumerable<TrainingRow> ReadRows(string path, Action<EmbedderException>? onBadRow = null, TextEncoding? encoding = null)
    {
        if (!File.Exists(path))
            throw new EmbedderException($"{path}: training file not found");
        TrainingRow? first = null;
        long lineNumber = 0;
        foreach (var line in TextFile.ReadLines(path, encoding))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            TrainingRow row;
            try
            {
                row = ParseRow(path, lineNumber, line);
                if (first is not null) CheckAgreesWithFirst(path, row, first);
                else if (row.Task is null)
                    throw EmbedderException.AtLine(path, lineNumber,
                        "row has no \"task\" (the first row's task selects the instruction and the training config)");
            }
            catch (EmbedderException error) when (onBadRow is not null)
            {
                onBadRow(error);
                continue;
            }
            first ??= row;
            yield return row;
        }
    }

    internal static EmbedderException NoRows(string path, int skipped, string? firstSkipped) => skipped == 0
        ? new EmbedderException($"{path}: no training rows")
        : new EmbedderException($"{path}: no valid training rows ({skipped} bad rows skipped; the first: {firstSkipped})");

    /// <summary>Parses one JSONL line; every problem is an error at <paramref name="file"/>:<paramref name="line"/>.</summary>
    public static TrainingRow ParseRow(string file, long line, string json)
    {
        using (var document = JsonlFile.ParseObject(file, line, json))
        {
            var root = document.RootElement;

            var query = root.TryGetProperty("query", out var queryElement) && queryElement.ValueKind != JsonValueKind.Null
                ? queryElement.ValueKind == JsonValueKind.String
                    ? queryElement.GetString()!
                    : throw EmbedderException.AtLine(file, line, $"\"query\" must be a string, got {JsonlFile.Describe(queryElement)}")
                : throw EmbedderException.AtLine(file, line, "row has no \"query\"");

            string? task = null;
            if (root.TryGetProperty("task", out var taskElement) && taskElement.ValueKind != JsonValueKind.Null)
                task = taskElement.ValueKind == JsonValueKind.String
                    ? taskElement.GetString()
                    : throw EmbedderException.AtLine(file, line, $"\"task\" must be a string, got {JsonlFile.Describe(taskElement)}");

            string[] pos, neg;
            var fromHistory = root.TryGetProperty("history", out var history) && history.ValueKind != JsonValueKind.Null;
            if (fromHistory)
            {
                // Chat rows: the teacher decides which past dialogue is the positive.
                pos = [];
                neg = JsonlFile.StringList(history, "history", file, line);
            }
            else
            {
                pos = JsonlFile.StringList(RequiredField(file, line, root, "pos"), "pos", file, line);
                neg = JsonlFile.StringList(RequiredField(file, line, root, "neg"), "neg", file, line);
            }

            double[]? teacherScores = null;
            if (root.TryGetProperty("teacher_scores", out var scores) && scores.ValueKind != JsonValueKind.Null)
            {
                teacherScores = NumberList(file, line, scores);
                var expected = pos.Length + neg.Length;
                if (teacherScores.Length != expected)
                    throw EmbedderException.AtLine(file, line, fromHistory
                        ? $"\"teacher_scores\" has {teacherScores.Length} values but \"history\" has {neg.Length} entries"
                        : $"\"teacher_scores\" has {teacherScores.Length} values but |pos|+|neg| = {pos.Length}+{neg.Length} = {expected}");
            }
            return new TrainingRow(query, pos, neg, teacherScores, task, fromHistory, line);
        }
    }

    private static void CheckAgreesWithFirst(string path, TrainingRow row, TrainingRow first)
    {
        if (row.Task is not null && row.Task != first.Task)
            throw EmbedderException.AtLine(path, row.Line,
                $"task \"{row.Task}\" differs from the file's task \"{first.Task}\" (line {first.Line}); a file is one dataset of one task");
        if ((row.TeacherScores is null) != (first.TeacherScores is null))
            throw EmbedderException.AtLine(path, row.Line, row.TeacherScores is null
                ? $"row has no \"teacher_scores\" but line {first.Line} has; give them on every row of a file or on none"
                : $"row has \"teacher_scores\" but line {first.Line} has none; give them on every row of a file or on none");
    }

    private static JsonElement RequiredField(string file, long line, JsonElement root, string name) =>
        root.TryGetProperty(name, out var element) && element.ValueKind != JsonValueKind.Null
            ? element
            : throw EmbedderException.AtLine(file, line, $"row has no \"{name}\" (a list of strings)");

    private static double[] NumberList(string file, long line, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
            throw EmbedderException.AtLine(file, line, $"\"teacher_scores\" must be a list of numbers, got {JsonlFile.Describe(element)}");
        var values = new double[element.GetArrayLength()];
        var index = 0;
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out var value) || !double.IsFinite(value))
                throw EmbedderException.AtLine(file, line, $"\"teacher_scores\" must be a list of finite numbers, item {index} is {JsonlFile.Describe(item)}");
            values[index++] = value;
        }
        return values;
    }

    /// <summary>
    /// Python-glob-like expansion of * and ? (any characters / one character within a path segment; a
    /// leading dot must be matched explicitly). Results are sorted so a run sees its datasets in a fixed order.
    /// </summary>
    internal static class Glob
    {
        public static bool IsPattern(string path) => path.AsSpan().IndexOfAny('*', '?') >= 0;

        public static IReadOnlyList<string> Expand(string pattern)
        {
            var root = Path.GetPathRoot(pattern) ?? "";
            var segments = pattern[root.Length..].Split(['/', Path.DirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
            IEnumerable<string> candidates = [root];
            for (var i = 0; i < segments.Length; i++)
            {
                var segment = segments[i];
                var isLast = i == segments.Length - 1;
                if (!IsPattern(segment))
                {
                    candidates = candidates.Select(c => Join(c, segment))
                        .Where(p => isLast ? File.Exists(p) : Directory.Exists(p)).ToList();
                    continue;
                }
                var matcher = ToRegex(segment);
                candidates = candidates.SelectMany(parent =>
                {
                    var directory = parent.Length == 0 ? "." : parent;
                    if (!Directory.Exists(directory)) return [];
                    var entries = isLast ? Directory.EnumerateFiles(directory) : Directory.EnumerateDirectories(directory);
                    return entries.Select(Path.GetFileName).Where(name => matcher.IsMatch(name!)).Select(name => Join(parent, name!));
                }).ToList();
            }
            return candidates.Order(StringComparer.Ordinal).ToList();
        }

        private static string Join(string parent, string name) => parent.Length == 0 ? name : Path.Combine(parent, name);

        private static Regex ToRegex(string segment)
        {
            var body = string.Concat(segment.Select(c => c switch
            {
                '*' => "[^/]*",
                '?' => "[^/]",
                _ => Regex.Escape(c.ToString()),
            }));
            var hiddenGuard = segment.StartsWith('.') ? "" : "(?!\\.)";
            return new Regex($"^{hiddenGuard}{body}$", RegexOptions.CultureInvariant);
        }
    }
}
