using System.Diagnostics;
using System.Globalization;
using LlmEmbedder.Retrieval;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// Exact top-k search over random unit vectors: <see cref="ExactSearch"/> against what a user would otherwise write,
/// TorchSharp's matrix product + topk over corpus chunks with a running merge.
/// Usage: search [--corpus 100000] [--dim 384] [--queries 1000] [--k 100] [--threads 2] [--chunk 1024] [--block 128] [--no-torch]
/// </summary>
public static class SearchBench
{
    public static void Run(string[] args)
    {
        int corpusRows = Flag(args, "--corpus", 100_000), dimension = Flag(args, "--dim", 384);
        int queryRows = Flag(args, "--queries", 1000), k = Flag(args, "--k", 100);
        int threads = Flag(args, "--threads", Environment.ProcessorCount);
        var options = new ExactSearchOptions
        {
            Threads = threads,
            CorpusChunkRows = Flag(args, "--chunk", new ExactSearchOptions().CorpusChunkRows),
            QueryBlockRows = Flag(args, "--block", new ExactSearchOptions().QueryBlockRows),
        };
        Console.WriteLine($"exact search: {queryRows} queries x {corpusRows} corpus rows x {dimension} dims, top {k}, {threads} threads");

        var random = new Random(42);
        var queries = UnitRows(random, queryRows, dimension);
        var corpus = UnitRows(random, corpusRows, dimension);
        double flops = 2.0 * queryRows * corpusRows * dimension;

        ExactSearch.Search(queries[..(8 * dimension)], corpus[..(2048 * dimension)], dimension, k, options); // JIT warm-up
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var ours = ExactSearch.Search(queries, corpus, dimension, k, options);
        Report($"ExactSearch (C#, chunk {options.CorpusChunkRows}, block {options.QueryBlockRows})", clock, cpu, queryRows, flops);
        if (args.Contains("--no-torch")) return;

        torch.set_num_threads(threads);
        TorchTopK(queries[..(8 * dimension)], corpus[..(2048 * dimension)], dimension, k, 2048); // warm-up
        clock.Restart();
        cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var (torchIndices, _) = TorchTopK(queries, corpus, dimension, k, chunkRows: 16384);
        Report("TorchSharp mm + topk (chunks of 16384)", clock, cpu, queryRows, flops);

        int sameList = 0;
        long overlap = 0;
        for (int q = 0; q < queryRows; q++)
        {
            if (ours.Indices[q].AsSpan().SequenceEqual(torchIndices[q])) sameList++;
            overlap += ours.Indices[q].Intersect(torchIndices[q]).Count();
        }
        Console.WriteLine($"agreement with TorchSharp: identical top-{k} lists for {sameList}/{queryRows} queries, " +
                          $"{100.0 * overlap / ((long)queryRows * Math.Min(k, corpusRows)):F3}% of hits shared");
    }

    /// <summary>What a TorchSharp user would write: scores of a corpus chunk, its top-k, merged with the running top-k.</summary>
    private static (int[][] Indices, float[][] Scores) TorchTopK(float[] queries, float[] corpus, int dimension, int k, int chunkRows)
    {
        int queryRows = queries.Length / dimension, corpusRows = corpus.Length / dimension;
        using var scope = NewDisposeScope();
        var queryMatrix = tensor(queries, [queryRows, dimension]);
        Tensor? bestScores = null, bestIndices = null;
        for (int start = 0; start < corpusRows; start += chunkRows)
        {
            int rows = Math.Min(chunkRows, corpusRows - start);
            using var chunkScope = NewDisposeScope();
            var chunk = tensor(corpus.AsSpan(start * dimension, rows * dimension).ToArray(), [rows, dimension]);
            var scores = queryMatrix.matmul(chunk.t());
            var (chunkScores, chunkIndices) = scores.topk(Math.Min(k, rows), dim: 1);
            chunkIndices = chunkIndices + start;
            if (bestScores is not null)
            {
                var (merged, at) = cat([bestScores, chunkScores], 1).topk(Math.Min(k, start + rows), dim: 1);
                chunkIndices = cat([bestIndices!, chunkIndices], 1).gather(1, at);
                chunkScores = merged;
            }
            bestScores = chunkScores.MoveToOuterDisposeScope();
            bestIndices = chunkIndices.MoveToOuterDisposeScope();
        }
        var indices = bestIndices!.to_type(ScalarType.Int32).data<int>().ToArray();
        var values = bestScores!.data<float>().ToArray();
        int hits = indices.Length / queryRows;
        return (Enumerable.Range(0, queryRows).Select(q => indices[(q * hits)..((q + 1) * hits)]).ToArray(),
                Enumerable.Range(0, queryRows).Select(q => values[(q * hits)..((q + 1) * hits)]).ToArray());
    }

    /// <summary>Wall time, and CPU time too: on a shared machine the CPU seconds say more than the wall clock.</summary>
    private static void Report(string name, Stopwatch clock, TimeSpan cpuAtStart, int queries, double flops)
    {
        double seconds = clock.Elapsed.TotalSeconds;
        double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuAtStart).TotalSeconds;
        Console.WriteLine($"  {name,-52} {seconds,8:F3} s wall {cpuSeconds,8:F3} s CPU  {queries / seconds,8:F1} queries/s  " +
                          $"{flops / seconds / 1e9,6:F1} GFLOP/s ({flops / cpuSeconds / 1e9:F1} per CPU-second)");
    }

    private static float[] UnitRows(Random random, int rows, int dimension)
    {
        var values = new float[rows * dimension];
        for (int r = 0; r < rows; r++)
        {
            var row = values.AsSpan(r * dimension, dimension);
            double norm = 0;
            for (int d = 0; d < dimension; d++)
            {
                row[d] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
                norm += row[d] * row[d];
            }
            float scale = (float)(1 / Math.Sqrt(norm));
            for (int d = 0; d < dimension; d++) row[d] *= scale;
        }
        return values;
    }

    private static int Flag(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
