using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// The trainer's own training step (<see cref="TrainingStep"/> on a <see cref="DenseRetriever"/>: queries + B·G keys →
/// CLS → cosine contrastive loss → backward → clip → AdamW) on a random-weight model of a given config, with random
/// token ids of full length, timed by phase, with its model FLOP/s as a fraction of this CPU's measured GEMM peak (MFU).
/// With --peer, PyTorch's eager step (bench/pytorch/train_step.py, same shape, batch, lengths and threads) runs right
/// after in the same command, so the two are compared under the same machine load. Each side names its allocator: ours
/// is whatever bench/run gives it (jemalloc, as ./llm-embedder runs training); PyTorch runs as Debian ships it (glibc
/// malloc) unless --peer-allocator jemalloc preloads the same jemalloc for it too.
/// Flags: --config PATH --batch B --group G --query-len N --key-len N --steps N (timed) --warmup N (untimed, default 1)
/// --dtype fp32|bf16 --threads T [--gradient-checkpointing] [--mini-batch-size N] [--peer [--peer-dtype fp32|bf16] [--peer-allocator glibc|jemalloc]] [--tokenizer DIR]
/// </summary>
public static class TrainStepBench
{
    private sealed record Shape(BertConfig Config, int Batch, int Group, int QueryLength, int KeyLength);

    public static void Run(string[] args)
    {
        string Flag(string name, string fallback) => BenchArgs.Flag(args, name, fallback);
        string configPath = Flag("--config", "tests/fixtures/bge-small-zh-v1.5/config.json");
        var shape = new Shape(BertConfig.Load(configPath), int.Parse(Flag("--batch", "16")), int.Parse(Flag("--group", "8")),
            int.Parse(Flag("--query-len", "32")), int.Parse(Flag("--key-len", "128")));
        int steps = int.Parse(Flag("--steps", "2")), warmup = int.Parse(Flag("--warmup", "1"));
        int threads = int.Parse(Flag("--threads", get_num_threads().ToString(CultureInfo.InvariantCulture)));
        string dtypeName = Flag("--dtype", "fp32");
        var dtype = MixedPrecisionModel.ParseDtype(dtypeName);
        bool gradientCheckpointing = args.Contains("--gradient-checkpointing");
        int? miniBatchSize = Flag("--mini-batch-size", "") is { Length: > 0 } n ? int.Parse(n) : null;
        bool peer = args.Contains("--peer");
        // --peer-dtype fp32 races our bf16 step against PyTorch's fp32 one (the issue's bar); by default the same dtype.
        var peerDtype = MixedPrecisionModel.ParseDtype(Flag("--peer-dtype", dtypeName));
        bool peerJemalloc = Flag("--peer-allocator", "glibc") switch
        {
            "glibc" => false,
            "jemalloc" when BenchArgs.JemallocPreloaded() => true,
            "jemalloc" => throw new ArgumentException("--peer-allocator jemalloc: run the bench through bench/run, which preloads jemalloc"),
            var other => throw new ArgumentException($"--peer-allocator: expected glibc or jemalloc, got '{other}'"),
        };
        set_num_threads(threads);

        Console.WriteLine($"CPU {BenchArgs.CpuModel()}, {threads} threads, allocator {BenchArgs.Allocator()}, load average before: {BenchArgs.LoadAverage()}");
        // Both peaks before any step, so that neither is measured in the wake of a long run.
        var peak = GemmPeak.Measure(dtype);
        Console.WriteLine($"GEMM peak ({dtype}, 2048x2048, {threads} threads): {peak / 1e9:F1} GFLOP/s");
        var peerPeak = !peer || peerDtype == dtype ? peak : GemmPeak.Measure(peerDtype);
        if (peerPeak != peak) Console.WriteLine($"GEMM peak ({peerDtype}, 2048x2048, {threads} threads): {peerPeak / 1e9:F1} GFLOP/s");
        double flops = ModelFlopsPerStep(shape);

        var (seconds, phases, peakRss, estimate) = TimeOurStep(shape, Flag("--tokenizer", "samples/model"), dtype, gradientCheckpointing, miniBatchSize, steps, warmup);
        var setting = $"{shape.Config.NumHiddenLayers}L/{shape.Config.HiddenSize}H {dtype} batch {shape.Batch} x group {shape.Group}, " +
                      $"q{shape.QueryLength}/k{shape.KeyLength}, {threads} threads" +
                      (gradientCheckpointing ? ", gradient checkpointing" : "") + (miniBatchSize is { } m ? $", mini_batch_size {m}" : "");
        Console.WriteLine($"LlmEmbedder {setting}: {seconds:F3} s/step, {shape.Batch / seconds:F2} queries/s; " +
            string.Join(", ", phases.Select(p => $"{p.Key} {p.Value:F3} s")) +
            $"; {flops / 1e12:F2} model TFLOP/step, {flops / seconds / 1e9:F1} GFLOP/s, MFU {flops / seconds / peak:P1}" +
            $"; peak RSS {peakRss >> 20} MiB (estimated {estimate.Total >> 20} MiB)");

        if (!peer) return;
        Console.WriteLine($"load average before PyTorch: {BenchArgs.LoadAverage()}");
        var pytorch = RunPyTorch(configPath, shape, peerDtype == ScalarType.Float32 ? "fp32" : "bf16", steps, warmup, threads, peerJemalloc);
        Console.WriteLine($"{pytorch.Line} (allocator {(peerJemalloc ? "jemalloc" : "glibc malloc")})");
        Console.WriteLine($"PyTorch: {flops / pytorch.Seconds / 1e9:F1} GFLOP/s, MFU {flops / pytorch.Seconds / peerPeak:P1} (of the {peerDtype} GEMM peak " +
                          $"{peerPeak / 1e9:F1} GFLOP/s); LlmEmbedder {dtype} / PyTorch {peerDtype} speed: {pytorch.Seconds / seconds:F2}x");
    }

    /// <summary>Seconds per timed step, the phases' mean seconds, peak RSS, and the trainer's memory estimate.</summary>
    private static (double Seconds, Dictionary<string, double> Phases, long PeakRss, MemoryEstimate Estimate) TimeOurStep(
        Shape shape, string tokenizer, ScalarType dtype, bool gradientCheckpointing, int? miniBatchSize, int steps, int warmup)
    {
        var config = shape.Config;
        var model = new BertModel(config);
        model.InitializeRandomWeights(new Generator(1));
        var encoder = new SentenceEncoder(BertTokenizer.FromDirectory(tokenizer), model,
            new EncoderSpec { QueryMaxLength = shape.QueryLength, KeyMaxLength = shape.KeyLength });
        using var retriever = new DenseRetriever(encoder, keyEncoder: null, new RetrieverOptions
        {
            ComputeDtype = dtype, GradientCheckpointing = gradientCheckpointing, MiniBatchSize = miniBatchSize,
        });
        var estimate = MemoryEstimate.For(config, retriever.Parameters.Sum(p => p.Parameter.numel()), dtype, gradientCheckpointing,
            MemoryEstimate.Graph(shape.Batch, shape.Group, shape.QueryLength, shape.KeyLength, miniBatchSize));
        using var trainingStep = new TrainingStep(retriever, new TrainingStepOptions { LearningRate = 1e-5, WeightDecay = 0.01, MaxGradNorm = 1.0 });
        var loss = new RetrievalLossOptions { DenseMetric = DenseMetric.Cos, CosTemperature = 0.02, ContrastiveWeight = 1.0 };
        var random = new Random(1);
        TokenBatch Ids(int rows, int length) => new(
            Enumerable.Range(0, rows * length).Select(_ => (long)random.Next(1000, config.VocabSize)).ToArray(),
            Enumerable.Repeat(1L, rows * length).ToArray(), rows, length);

        retriever.Train(true);
        var phases = new Dictionary<string, double> { ["forward"] = 0, ["backward"] = 0, ["optimizer"] = 0 };
        var total = new Stopwatch();
        for (int step = 1; step <= warmup + steps; step++)
        {
            var batch = new RetrievalBatch(Ids(shape.Batch, shape.QueryLength), Ids(shape.Batch * shape.Group, shape.KeyLength), null, loss);
            bool timed = step > warmup;
            if (timed) total.Start();
            var result = trainingStep.Run(step, [batch], 1e-5);
            if (!timed) continue;
            total.Stop();
            phases["forward"] += result.Forward.TotalSeconds / steps;
            phases["backward"] += result.Backward.TotalSeconds / steps;
            phases["optimizer"] += result.Update.TotalSeconds / steps;
        }
        using var process = Process.GetCurrentProcess();
        return (total.Elapsed.TotalSeconds / steps, phases, process.PeakWorkingSet64, estimate);
    }

    /// <summary>
    /// Model FLOPs of one step (forward + backward = 3 forwards; recomputation by checkpointing or caching not counted,
    /// as MFU is defined): per text of L tokens and per layer, 2·L·(4H² + 2·H·I) for the matmuls with weights and
    /// 4·L²·H for attention (QKᵀ and PV). Pooling, the loss and the optimizer are negligible beside it.
    /// </summary>
    private static double ModelFlopsPerStep(Shape shape)
    {
        var c = shape.Config;
        double Forward(int length) => c.NumHiddenLayers * (2.0 * length * (4.0 * c.HiddenSize * c.HiddenSize + 2.0 * c.HiddenSize * c.IntermediateSize)
                                                           + 4.0 * length * length * c.HiddenSize);
        return 3 * (shape.Batch * Forward(shape.QueryLength) + shape.Batch * shape.Group * Forward(shape.KeyLength));
    }

    private static (double Seconds, string Line) RunPyTorch(string configPath, Shape shape, string dtype, int steps, int warmup, int threads,
        bool jemalloc)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, UseShellExecute = false };
        // The child would inherit our preload; PyTorch gets jemalloc only when asked for, and then the same settings.
        if (!jemalloc)
        {
            var others = (start.Environment["LD_PRELOAD"] ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains("jemalloc", StringComparison.Ordinal));
            start.Environment["LD_PRELOAD"] = string.Join(':', others);
            start.Environment.Remove("MALLOC_CONF");
        }
        foreach (var arg in new[]
                 {
                     "bench/pytorch/train_step.py", "--config", configPath, "--batch", $"{shape.Batch}", "--group", $"{shape.Group}",
                     "--query-len", $"{shape.QueryLength}", "--key-len", $"{shape.KeyLength}", "--steps", $"{steps}", "--warmup", $"{warmup}",
                     "--threads", $"{threads}", "--dtype", dtype,
                 })
            start.ArgumentList.Add(arg);
        using var python = Process.Start(start)!;
        var output = python.StandardOutput.ReadToEnd().Trim();
        python.WaitForExit();
        var match = Regex.Match(output, @"([0-9.]+) s/step");
        if (python.ExitCode != 0 || !match.Success) throw new InvalidOperationException($"PyTorch peer failed (exit {python.ExitCode}): {output}");
        return (double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), output);
    }
}

/// <summary>What this CPU's libtorch reaches on a large square matmul: the denominator of MFU.</summary>
public static class GemmPeak
{
    /// <summary>FLOP/s of the best of several 2048×2048×2048 matmuls in <paramref name="dtype"/>.</summary>
    public static double Measure(ScalarType dtype, int size = 2048, int repeats = 6)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(3);
        var a = randn([size, size], generator: generator).to(dtype);
        var b = randn([size, size], generator: generator).to(dtype);
        a.matmul(b);
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            using var inner = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            a.matmul(b);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * size * size * size / best;
    }
}
