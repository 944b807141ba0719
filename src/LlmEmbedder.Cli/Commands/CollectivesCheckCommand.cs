using System.CommandLine;
using System.Text.Json;
using LlmEmbedder.Distributed;
using static TorchSharp.torch;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// Hidden: runs each collective once on known inputs under mpirun and writes what this rank received to
/// DIR/rank-R.json, so a test can compare it with values computed by hand. Rank r contributes values built from r.
/// </summary>
internal static class CollectivesCheckCommand
{
    public const string Name = "collectives-check";

    public static Command Create()
    {
        var output = new Option<string>("--output") { Description = "Folder for rank-R.json", Required = true };
        var command = new Command(Name, "Check the MPI collectives (for tests)") { output };
        command.Hidden = true;
        command.SetAction(parsed => DistributedLaunch.Run(group =>
        {
            int r = group.Rank, w = group.WorldSize;
            float[] sumFloat = Enumerable.Range(0, 5).Select(i => r + 1 + 0.5f * i).ToArray();
            group.AllReduceSum(sumFloat);
            double[] sumDouble = [r + 1, 1e-3 * (r + 1)];
            group.AllReduceSum(sumDouble);
            float[] gathered = new float[3 * w];
            group.AllGather(Enumerable.Range(0, 3).Select(i => 100f * r + i).ToArray(), gathered);

            using var scope = NewDisposeScope();
            var gatheredTensors = group.AllGather(tensor(new float[] { r, r + 0.25f, -r, 7 }, [2, 2]));
            // Two parameters whose gradients are filled with r+1 and 10·(r+1)+position: their mean over ranks is known.
            var first = new TorchSharp.Modules.Parameter(zeros(2, 3));
            var second = new TorchSharp.Modules.Parameter(zeros(4));
            first.grad = full([2, 3], r + 1f);
            second.grad = arange(4, dtype: ScalarType.Float32).add(10f * (r + 1));
            group.AllReduceMeanGradients([first, second]);
            double lossMean = group.AllReduceMean(2.0 * r + 1);

            byte[] broadcast = System.Text.Encoding.ASCII.GetBytes($"from rank {r,3}");
            group.Broadcast(broadcast, root: w - 1);
            group.Barrier();
            int? lowestFailed = group.AgreeOnStartup(failedHere: r == w - 1 || r == w - 2);

            var result = new Dictionary<string, object?>
            {
                ["rank"] = r,
                ["world_size"] = w,
                ["sum_float"] = sumFloat,
                ["sum_double"] = sumDouble,
                ["all_gather"] = gathered,
                ["all_gather_tensors"] = gatheredTensors.Select(t => t.data<float>().ToArray()).ToArray(),
                ["mean_grad_first"] = first.grad!.data<float>().ToArray(),
                ["mean_grad_second"] = second.grad!.data<float>().ToArray(),
                ["mean_scalar"] = lossMean,
                ["broadcast"] = System.Text.Encoding.ASCII.GetString(broadcast),
                ["lowest_failed"] = lowestFailed,
                ["threads"] = get_num_threads(),
                ["libmpi_loaded"] = File.ReadAllText("/proc/self/maps").Contains("libmpi.so"),
            };
            var dir = parsed.GetRequiredValue(output);
            Directory.CreateDirectory(dir);
            FileUtil.WriteAllTextAtomic(Path.Combine(dir, $"rank-{r}.json"), JsonSerializer.Serialize(result));
            return 0;
        }));
        return command;
    }
}
