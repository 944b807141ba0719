using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// The trainer's own training step (<see cref="TrainingStep"/> on a <see cref="DenseRetriever"/>: queries + B·G keys →
/// CLS → cosine contrastive loss → backward → clip → AdamW) on a random-weight model of a given config, with random
/// token ids, timed by phase. Flags: --config PATH --batch B --group G --query-len N --key-len N --steps N --dtype fp32|bf16
/// [--gradient-checkpointing] [--tokenizer DIR (any BERT tokenizer folder; the ids are fed directly)]
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

        var model = new BertModel(config);
        model.InitializeRandomWeights(new Generator(1));
        var encoder = new SentenceEncoder(BertTokenizer.FromDirectory(Flag("--tokenizer", "samples/model")), model,
            new EncoderSpec { QueryMaxLength = queryLength, KeyMaxLength = keyLength });
        using var retriever = new DenseRetriever(encoder, keyEncoder: null, new RetrieverOptions
        {
            ComputeDtype = dtype, GradientCheckpointing = gradientCheckpointing,
        });
        using var trainingStep = new TrainingStep(retriever, new TrainingStepOptions { LearningRate = 1e-5, WeightDecay = 0.01, MaxGradNorm = 1.0 });
        var loss = new RetrievalLossOptions { DenseMetric = DenseMetric.Cos, CosTemperature = 0.02, ContrastiveWeight = 1.0 };
        var random = new Random(1);
        TokenBatch Ids(int rows, int length) => new(
            Enumerable.Range(0, rows * length).Select(_ => (long)random.Next(1000, config.VocabSize)).ToArray(),
            Enumerable.Repeat(1L, rows * length).ToArray(), rows, length);

        retriever.Train(true);
        var phases = new Dictionary<string, double> { ["forward"] = 0, ["backward"] = 0, ["optimizer"] = 0 };
        var total = Stopwatch.StartNew();
        for (int step = 0; step <= steps; step++)
        {
            if (step == 1) { total.Restart(); foreach (var name in phases.Keys.ToList()) phases[name] = 0; }
            var result = trainingStep.Run(step + 1, [new RetrievalBatch(Ids(batch, queryLength), Ids(batch * group, keyLength), null, loss)], 1e-5);
            phases["forward"] += result.Forward.TotalSeconds;
            phases["backward"] += result.Backward.TotalSeconds;
            phases["optimizer"] += result.Update.TotalSeconds;
        }
        double seconds = total.Elapsed.TotalSeconds;
        using var process = Process.GetCurrentProcess();
        Console.WriteLine($"{config.NumHiddenLayers}L/{config.HiddenSize}H {dtype} batch {batch} x group {group}, q{queryLength}/k{keyLength}, {get_num_threads()} threads" +
            (gradientCheckpointing ? ", gradient checkpointing" : "") + ": " +
            $"{seconds / steps:F3} s/step, {batch * steps / seconds:F2} queries/s; " +
            string.Join(", ", phases.Select(p => $"{p.Key} {p.Value / steps:F3} s")) + $"; peak RSS {process.PeakWorkingSet64 >> 20} MiB");
    }
}
