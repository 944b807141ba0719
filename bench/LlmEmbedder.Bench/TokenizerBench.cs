using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using LlmEmbedder.Tokenization;

/// <summary>
/// Races our BertTokenizer against Hugging Face tokenizers (Tokenizers.DotNet, Rust) and FastBertTokenizer on the
/// same seeded lines (Chinese queries and passages with some English, as in retrieval training data), one thread and
/// batched, and counts how many lines each gives the same ids as HF.
/// Usage: tokenizer [--model DIR] [--lines N] [--max-length N] [--batch N]
/// </summary>
public static class TokenizerBench
{
    private const int Repeats = 3;

    public static void Run(string[] args)
    {
        var modelDir = Option(args, "--model") ?? DefaultModelDir();
        var lineCount = int.Parse(Option(args, "--lines") ?? "20000", CultureInfo.InvariantCulture);
        var maxLength = int.Parse(Option(args, "--max-length") ?? "512", CultureInfo.InvariantCulture);
        var batchSize = int.Parse(Option(args, "--batch") ?? "256", CultureInfo.InvariantCulture);

        var ours = BertTokenizer.FromDirectory(modelDir);
        var lines = RetrievalLikeLines(ours, lineCount, seed: 42);
        var workDir = Path.Combine(Path.GetTempPath(), $"llm-embedder-tokenizer-bench-{Environment.ProcessId}");
        try
        {
            // HF reads our saved tokenizer.json with its truncation switched on, as BertTokenizerFast(truncation=True) would.
            ours.Save(workDir);
            var jsonPath = Path.Combine(workDir, "tokenizer.json");
            var json = JsonNode.Parse(File.ReadAllText(jsonPath))!.AsObject();
            json["truncation"] = new JsonObject { ["direction"] = "Right", ["max_length"] = maxLength, ["strategy"] = "LongestFirst", ["stride"] = 0 };
            File.WriteAllText(jsonPath, json.ToJsonString());
            using var huggingFace = new Tokenizers.DotNet.Tokenizer(jsonPath);
            var fastBert = new FastBertTokenizer.BertTokenizer();
            using (var vocab = new StreamReader(Path.Combine(workDir, "vocab.txt")))
                fastBert.LoadVocabulary(vocab, convertInputToLowercase: ours.Normalization.LowerCase);

            var reference = lines.Select(line => huggingFace.Encode(line).Select(id => (int)id).ToArray()).ToArray();
            var totalTokens = reference.Sum(ids => (long)ids.Length);
            Console.WriteLine($"tokenizer bench: {lines.Count} lines, {lines.Sum(l => (long)l.Length)} chars, {totalTokens} tokens with [CLS]/[SEP] at max_length {maxLength}; {Environment.ProcessorCount} cores; vocab {modelDir}");
            Console.WriteLine($"{"tokenizer",-28} {"mode",-26} {"lines/s",12} {"tokens/s",12} {"same ids as HF",16}");

            Report("LlmEmbedder", "one line at a time", lines.Count, totalTokens, Agreement(lines, reference, line => ours.Encode(line, maxLength)),
                () => { foreach (var line in lines) ours.Encode(line, maxLength); });
            Report("LlmEmbedder", $"EncodeBatch({batchSize})", lines.Count, totalTokens, null,
                () => { foreach (var batch in lines.Chunk(batchSize)) ours.EncodeBatch(batch, maxLength); });
            Report("LlmEmbedder", $"EncodeBatch({batchSize}) x{Environment.ProcessorCount} threads", lines.Count, totalTokens, null,
                () => Parallel.ForEach(lines.Chunk(batchSize), batch => ours.EncodeBatch(batch, maxLength)));

            Report("HF tokenizers (Rust)", "one line at a time", lines.Count, totalTokens, 1.0,
                () => { foreach (var line in lines) huggingFace.Encode(line); });
            Report("HF tokenizers (Rust)", $"lines x{Environment.ProcessorCount} threads", lines.Count, totalTokens, null,
                () => Parallel.ForEach(lines, line => huggingFace.Encode(line)));

            var fastIds = new long[maxLength];
            var fastMask = new long[maxLength];
            Report("FastBertTokenizer 1.2.6", "one line at a time", lines.Count, totalTokens,
                Agreement(lines, reference, line => FastBertIds(fastBert, line, fastIds, fastMask)),
                () => { foreach (var line in lines) fastBert.Encode(line, fastIds, fastMask); });
        }
        finally
        {
            if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
        }
    }

    private static int[] FastBertIds(FastBertTokenizer.BertTokenizer tokenizer, string line, long[] ids, long[] mask)
    {
        // The span overload: the (string, max, padTo) overload keeps a larger earlier maximum.
        var count = tokenizer.Encode(line, ids, mask);
        return [.. ids.AsSpan(0, count).ToArray().Select(id => (int)id)];
    }

    private static double Agreement(IReadOnlyList<string> lines, int[][] reference, Func<string, int[]> encode)
    {
        var same = 0;
        for (var i = 0; i < lines.Count; i++)
            if (encode(lines[i]).AsSpan().SequenceEqual(reference[i])) same++;
        return (double)same / lines.Count;
    }

    /// <summary>Best of a few timed passes after one warm-up pass.</summary>
    private static void Report(string tokenizer, string mode, int lineCount, long tokenCount, double? agreement, Action pass)
    {
        pass();
        var best = double.MaxValue;
        for (var i = 0; i < Repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            pass();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        var same = agreement is { } share ? share.ToString("P2", CultureInfo.InvariantCulture) : "";
        Console.WriteLine($"{tokenizer,-28} {mode,-26} {lineCount / best,12:N0} {tokenCount / best,12:N0} {same,16}");
    }

    /// <summary>Half queries (8-40 characters), half passages (80-600), mostly Chinese with English words, digits and punctuation.</summary>
    private static List<string> RetrievalLikeLines(BertTokenizer tokenizer, int count, int seed)
    {
        var random = new Random(seed);
        var hanzi = new List<string>();
        var words = new List<string>();
        for (var id = 0; id < tokenizer.VocabSize; id++)
        {
            var token = tokenizer.IdToToken(id);
            if (token is null || token.StartsWith('[') || token.StartsWith("##", StringComparison.Ordinal)) continue;
            if (token.Length == 1 && token[0] is >= '\u4E00' and <= '\u9FFF') hanzi.Add(token);
            else if (token.Length > 1 && token.All(char.IsAsciiLetter)) words.Add(token);
        }
        if (words.Count == 0) words.Add("model");
        var chinesePunctuation = new[] { "，", "。", "、", "：", "；", "！", "？", "“", "”", "（", "）" };
        var lines = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            var length = random.Next(2) == 0 ? random.Next(8, 41) : random.Next(80, 601);
            var englishLine = hanzi.Count == 0 || random.Next(10) == 0;
            var line = new StringBuilder(length + 16);
            while (line.Length < length)
            {
                var roll = random.Next(100);
                if (!englishLine && roll < 80) line.Append(hanzi[random.Next(hanzi.Count)]);
                else if (roll < 90) line.Append(' ').Append(random.Next(3) == 0 ? Capitalized(words[random.Next(words.Count)]) : words[random.Next(words.Count)]).Append(' ');
                else if (roll < 95) line.Append(random.Next(2030).ToString(CultureInfo.InvariantCulture));
                else line.Append(englishLine ? ". " : chinesePunctuation[random.Next(chinesePunctuation.Length)]);
            }
            lines.Add(line.ToString());
        }
        return lines;
    }

    private static string Capitalized(string word) => char.ToUpperInvariant(word[0]) + word[1..];

    private static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    private static string DefaultModelDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LlmEmbedder.slnx")))
                return Path.Combine(dir.FullName, "tests", "fixtures", "bert-base-chinese");
        throw new InvalidOperationException("repository root (LlmEmbedder.slnx) not found; pass --model DIR");
    }
}
