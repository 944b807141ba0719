using System.Text.Json;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Distributed;

/// <summary>
/// The collectives over Open MPI (hidden <c>llm-embedder collectives-check</c>), run by mpirun with 2 and 3 ranks:
/// what each rank received equals the value computed by hand from what every rank contributed (rank r gives r+1, ...).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class MpiCollectivesTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("mpi-collectives");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void EveryRankReceivesTheHandComputedResult(int w)
    {
        var output = Path.Combine(dir, $"np{w}");
        var (result, _) = MpiRun.Run(w, ["collectives-check", "--output", output], TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);

        for (int r = 0; r < w; r++)
        {
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, $"rank-{r}.json")));
            var root = json.RootElement;
            float[] Floats(string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetSingle()).ToArray();
            Assert.Equal(r, root.GetProperty("rank").GetInt32());
            Assert.Equal(w, root.GetProperty("world_size").GetInt32());
            // Σ_r (r+1 + i/2) = W(W+1)/2 + W·i/2
            Assert.Equal(Enumerable.Range(0, 5).Select(i => w * (w + 1) / 2f + w * 0.5f * i), Floats("sum_float"));
            var sumDouble = root.GetProperty("sum_double").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(w * (w + 1) / 2.0, sumDouble[0]);
            Assert.Equal(1e-3 * w * (w + 1) / 2.0, sumDouble[1], 15);
            Assert.Equal(Enumerable.Range(0, w).SelectMany(q => new[] { 100f * q, 100f * q + 1, 100f * q + 2 }), Floats("all_gather"));
            var shards = root.GetProperty("all_gather_tensors").EnumerateArray().ToArray();
            Assert.Equal(w, shards.Length);
            for (int q = 0; q < w; q++)
                Assert.Equal(new[] { q, q + 0.25f, -q, 7f }, shards[q].EnumerateArray().Select(e => e.GetSingle()).ToArray());
            // mean_r (r+1) = (W+1)/2; mean_r (10(r+1) + i) = 5(W+1) + i
            Assert.All(Floats("mean_grad_first"), v => Assert.Equal((w + 1) / 2f, v));
            Assert.Equal(Enumerable.Range(0, 4).Select(i => 5f * (w + 1) + i), Floats("mean_grad_second"));
            // mean_r (2r+1) = W
            Assert.Equal(w, root.GetProperty("mean_scalar").GetDouble(), 12);
            Assert.Equal($"from rank {w - 1,3}", root.GetProperty("broadcast").GetString());
            // ranks W-1 and W-2 reported a failed startup; all agree on the lower one
            Assert.Equal(w - 2, root.GetProperty("lowest_failed").GetInt32());
            Assert.Equal(ExpectedRankThreads(w), root.GetProperty("threads").GetInt32());
            Assert.True(root.GetProperty("libmpi_loaded").GetBoolean());
        }
    }

    /// <summary>
    /// The ranks on this machine split its cores; an OMP_NUM_THREADS in the environment (which mpirun passes on) is left
    /// to libtorch, which then picks what it picks in this test process too (not always that number: it may cap it).
    /// </summary>
    private static int ExpectedRankThreads(int ranks) =>
        Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null
            ? Math.Max(1, Environment.ProcessorCount / ranks)
            : TorchSharp.torch.get_num_threads();

    [Fact]
    public void CommandsOtherThanTrainAreRefusedUnderMpirunWithOneMessage()
    {
        var output = Path.Combine(dir, "embeddings.npy");
        var (result, _) = MpiRun.Run(2, ["encode", "--model", "unused", "--input", "unused.txt", "--output", output], TimeSpan.FromMinutes(2));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Single(result.StderrLines, line => line.StartsWith("llm-embedder: ", StringComparison.Ordinal));
        Assert.Contains("llm-embedder: error: only train runs under mpirun; run 'encode' as a single process", result.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void WithoutMpirunTheCollectivesAreTheIdentityAndLibmpiIsNotLoaded()
    {
        var output = Path.Combine(dir, "plain");
        var result = CliProcess.Run(["collectives-check", "--output", output]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "rank-0.json")));
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("world_size").GetInt32());
        Assert.Equal(new[] { 1f, 1.5f, 2f, 2.5f, 3f }, root.GetProperty("sum_float").EnumerateArray().Select(e => e.GetSingle()));
        Assert.Equal(0, root.GetProperty("lowest_failed").GetInt32());   // W−1 = 0 failed
        Assert.False(root.GetProperty("libmpi_loaded").GetBoolean());
    }
}
