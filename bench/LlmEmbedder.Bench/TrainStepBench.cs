using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using LlmEmbedder.Training.Optimization;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// One training step (queries + B·G keys → contrastive loss → backward → AdamW) of a random-weight model of a
/// given config, timed by phase. Flags: --config PATH --batch B --group G --query-len N --key-len N --steps N --dtype fp32|bf16
/// [--gradient-checkpointing]
/// </summary>
public static class TrainStepBench
{
    public static void Run(string[] args)
    {
        string Flag(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
        var config = BertConfig.Load(Flag("--config", "tests/fixtures/bge-small-zh-v1.5/config.json"));
        int batch = int.Parse(Flag("--batch", "16")), group = int.Parse(Flag("--group", "8"));
        int queryLength = int.Parse(Flag("--query-len", "32")), keyLength = int.Parse(Flag("--key-len", "128"));
        int steps = int.Parse(Flag("--steps", "5"));
        var dtype = MixedPrecisionModel.ParseDtype(Flag("--dtype", "fp32"));
        bool gradientCheckpointing = args.Contains("--gradient-checkpointing");

        using var model = new BertModel(config);
        model.InitializeRandomWeights(new Generator(1));
        using var compute = new MixedPrecisionModel(model, dtype);
        compute.Compute.GradientCheckpointing = gradientCheckpointing;
        compute.Train(true);
        var parameters = model.named_parameters().ToList();
        using var optimizer = AdamWWithDecayGroups.Create(parameters.Select(p => (p.name, p.parameter)), 1e-5, 0.01);
        var loss = new ContrastiveLoss(new EmbeddingSimilarity(DenseMetric.Cos, 0.02));
        Tensor Ids(int rows, int length) => randint(1000, config.VocabSize, [rows, length], dtype: ScalarType.Int64);

        var phases = new Dictionary<string, double> { ["forward"] = 0, ["backward"] = 0, ["optimizer"] = 0 };
        var total = Stopwatch.StartNew();
        for (int step = 0; step <= steps; step++)
        {
            if (step == 1) { total.Restart(); foreach (var name in phases.Keys.ToList()) phases[name] = 0; }
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            Tensor value;
            // As the Trainer: the forward's handles are released before backward (the graph keeps what it needs).
            using (NewDisposeScope())
            {
                var q = Pooling.Apply(compute.Compute.call(Ids(batch, queryLength), ones(batch, queryLength, dtype: ScalarType.Int64)),
                    null!, PoolingMethod.Cls).to(ScalarType.Float32);
                var k = Pooling.Apply(compute.Compute.call(Ids(batch * group, keyLength), ones(batch * group, keyLength, dtype: ScalarType.Int64)),
                    null!, PoolingMethod.Cls).to(ScalarType.Float32);
                value = loss.Compute(q, k).MoveToOuterDisposeScope();
            }
            phases["forward"] += clock.Elapsed.TotalSeconds; clock.Restart();
            value.backward();
            compute.MoveGradientsToMaster();
            phases["backward"] += clock.Elapsed.TotalSeconds; clock.Restart();
            nn.utils.clip_grad_norm_(parameters.Select(p => p.parameter), 1.0);
            optimizer.step();
            optimizer.zero_grad();
            compute.SyncFromMaster();
            phases["optimizer"] += clock.Elapsed.TotalSeconds;
        }
        double seconds = total.Elapsed.TotalSeconds;
        using var process = Process.GetCurrentProcess();
        Console.WriteLine($"{config.NumHiddenLayers}L/{config.HiddenSize}H {dtype} batch {batch} x group {group}, q{queryLength}/k{keyLength}, {get_num_threads()} threads" +
            (gradientCheckpointing ? ", gradient checkpointing" : "") + ": " +
            $"{seconds / steps:F3} s/step, {batch * steps / seconds:F2} queries/s; " +
            string.Join(", ", phases.Select(p => $"{p.Key} {p.Value / steps:F3} s")) + $"; peak RSS {process.PeakWorkingSet64 >> 20} MiB");
    }
}
