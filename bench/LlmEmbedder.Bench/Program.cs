// Benchmarks race LlmEmbedder against the alternatives a user would pick.
// Usage: dotnet run -c Release --project bench/LlmEmbedder.Bench -- <benchmark> [flags]
using LlmEmbedder.Bench;

var benchmarks = new Dictionary<string, Action<string[]>>
{
    ["search"] = SearchBench.Run,
    ["tokenizer"] = TokenizerBench.Run,
    ["train-step"] = TrainStepBench.Run,
    ["train-memory"] = TrainMemoryBench.Run,
    ["encode"] = EncodeBench.Run,
    ["eval"] = EvalBench.Run,
    ["serve-load"] = ServeLoadBench.Run,
    ["onnx"] = OnnxBench.Run,
};
if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: LlmEmbedder.Bench <{string.Join("|", benchmarks.Keys)}> [flags]");
    return 2;
}
run(args[1..]);
return Environment.ExitCode;
