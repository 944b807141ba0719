using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// Faults during a real CLI training run: Ctrl-C and SIGTERM (a checkpoint at the step, exit 130, a resume that repeats
/// the uninterrupted losses), a second Ctrl-C (exit at once, nothing half-written under a final name), a full disk
/// (one line, the earlier checkpoint intact and resumable) and a diverging run (stops, saves no non-finite weights).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed partial class TrainingFaultsTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("faults");
    private readonly string model;
    private readonly string data;

    public TrainingFaultsTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 80, task: "qa", seed: 5);
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>Fixed thread settings, so a resumed run repeats the uninterrupted one bit for bit (see KillAndResumeTests).</summary>
    private static readonly Dictionary<string, string> SameThreads = new()
    {
        ["OMP_NUM_THREADS"] = "2", ["MKL_NUM_THREADS"] = "2", ["MKL_DYNAMIC"] = "FALSE", ["OMP_DYNAMIC"] = "FALSE",
    };

    private string[] TrainArgs(string output, int maxSteps) =>
    [
        "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
        "--max_steps", maxSteps.ToString(), "--save_steps", "1000", "--per_device_train_batch_size", "4", "--train_group_size", "4",
        "--learning_rate", "1e-3", "--seed", "7", "--logging_steps", "1", "--query_max_length", "16", "--key_max_length", "24",
        "--dtype", "fp32", "--select_negative", "random",
    ];

    [Fact]
    public void CtrlCSavesACheckpointAtTheStepAndTheResumedRunRepeatsTheUninterruptedLosses()
    {
        var interrupted = Path.Combine(dir, "interrupted");
        var args = TrainArgs(interrupted, maxSteps: 500);
        int stoppedAt;
        using (var run = SignalledRun.Start(args))
        {
            run.WaitForOutput("step 4/500");
            run.AssertSigIntIsNotIgnored();
            run.SignalGroup(SigInt);
            var result = run.Wait();
            Assert.True(result.ExitCode == 130, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
            var stopped = StoppedMessage().Match(result.Stderr);
            Assert.True(stopped.Success, result.Stderr);
            stoppedAt = int.Parse(stopped.Groups[1].Value);
        }
        Assert.True(stoppedAt is >= 4 and < 500, $"stopped at {stoppedAt}");
        var checkpoint = CheckpointFolders.PathFor(interrupted, stoppedAt);
        Assert.Equal(checkpoint, CheckpointFolders.FindLatest(interrupted));
        Assert.Equal(stoppedAt, TrainerState.Load(Path.Combine(checkpoint, CheckpointFolders.TrainerStateFile)).GlobalStep);
        Assert.False(Directory.Exists(Path.Combine(interrupted, ModelFolder.TiedEncoderFolder)), "a stopped run saved a final model");

        // Both runs end 3 steps after the stop, on the same 500-step schedule.
        string[] endEarly = ["--early_exit_steps", (stoppedAt + 3).ToString()];
        var resumed = CliProcess.Run([.. args, .. endEarly, "--resume_from_checkpoint", "latest"], environment: SameThreads);
        Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);
        var uninterrupted = Path.Combine(dir, "uninterrupted");
        var whole = CliProcess.Run([.. TrainArgs(uninterrupted, maxSteps: 500), .. endEarly], environment: SameThreads);
        Assert.True(whole.ExitCode == 0, whole.Stdout + whole.Stderr);

        var expected = Losses(uninterrupted);
        var actual = Losses(interrupted);
        Assert.Equal(Enumerable.Range(1, stoppedAt + 3), actual.Select(p => p.Step));
        var differing = expected.Zip(actual).Where(pair => !(Math.Abs(pair.First.Loss - pair.Second.Loss) <= 1e-6))
            .Select(pair => $"step {pair.First.Step}: {pair.First.Loss:R} vs {pair.Second.Loss:R}").ToList();
        Assert.True(differing.Count == 0, $"stopped at {stoppedAt}; losses differ (uninterrupted vs resumed): {string.Join("; ", differing)}");
    }

    [Fact]
    public void SigTermStopsAtAStepBoundaryWithACheckpoint()
    {
        var output = Path.Combine(dir, "sigterm");
        using var run = SignalledRun.Start(TrainArgs(output, maxSteps: 500));
        run.WaitForOutput("step 2/500");
        run.SignalProcess(SigTerm);
        var result = run.Wait();
        Assert.True(result.ExitCode == 130, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        var stopped = StoppedMessage().Match(result.Stderr);
        Assert.True(stopped.Success, result.Stderr);
        var checkpoint = CheckpointFolders.PathFor(output, int.Parse(stopped.Groups[1].Value));
        Assert.Equal(checkpoint, CheckpointFolders.FindLatest(output));
    }

    [Fact]
    public void ASecondCtrlCStopsAtOnceAndLeavesNothingHalfWrittenUnderAFinalName()
    {
        var output = Path.Combine(dir, "twice");
        // Larger steps than the other tests', so the second Ctrl-C comes well before the step (and its checkpoint) ends.
        using var run = SignalledRun.Start(Replace(Replace(TrainArgs(output, maxSteps: 500), "--per_device_train_batch_size", "16"), "--train_group_size", "8"));
        run.WaitForOutput("step 2/500");
        run.AssertSigIntIsNotIgnored();
        run.SignalGroup(SigInt);
        run.WaitForOutput("stopping after this step", inStderr: true);
        run.SignalGroup(SigInt);
        var result = run.Wait();
        Assert.True(result.ExitCode == 130, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains("stopped at once", result.Stderr);
        Assert.DoesNotMatch(StoppedMessage(), result.Stderr);
        // output_dir goes with the lock when nothing was saved in it yet.
        if (!Directory.Exists(output)) return;
        Assert.False(Directory.Exists(Path.Combine(output, ModelFolder.TiedEncoderFolder)));
        foreach (var checkpoint in Directory.EnumerateDirectories(output, "checkpoint-*"))
            Assert.True(File.Exists(Path.Combine(checkpoint, CheckpointFolders.TrainerStateFile)), $"{checkpoint} is incomplete");
    }

    /// <summary>
    /// output_dir on a 12 MB tmpfs: checkpoint-1 (about 8.5 MB with this model: weights, AdamW moments, tokenizer) fits, checkpoint-2
    /// does not. Then the file system grows (space freed) and a resume from "latest" completes.
    /// </summary>
    [RootFact]
    public void AFullDiskFailsInOneLineKeepsTheEarlierCheckpointAndTheRunResumesOnceThereIsSpace()
    {
        var mountPoint = Path.Combine(dir, "small-disk");
        Directory.CreateDirectory(mountPoint);
        Mount("-t", "tmpfs", "-o", "size=12m", "tmpfs", mountPoint);
        try
        {
            var output = Path.Combine(mountPoint, "out");
            var args = Replace(TrainArgs(output, maxSteps: 3), "--save_steps", "1");
            var full = CliProcess.Run(args, environment: SameThreads);
            Assert.True(full.ExitCode == 1, full.Stdout + full.Stderr);
            var line = Assert.Single(full.StderrLines);
            Assert.Matches($"^llm-embedder: error: no space left on device while writing {Regex.Escape(Path.Combine(output, "checkpoint-2"))}/\\S+$", line);
            Assert.Equal(CheckpointFolders.PathFor(output, 1), CheckpointFolders.FindLatest(output));
            Assert.Equal(["checkpoint-1"], Directory.EnumerateDirectories(output).Select(Path.GetFileName));

            Mount("-o", "remount,size=48m", mountPoint);
            var resumed = CliProcess.Run([.. args, "--resume_from_checkpoint", "latest"], environment: SameThreads);
            Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);
            Assert.Contains("at step 1", resumed.Stdout);
            Assert.Equal([1, 2, 3], Losses(output).Select(p => p.Step));
            Assert.True(File.Exists(Path.Combine(output, ModelFolder.TiedEncoderFolder, "model.safetensors")));
        }
        finally
        {
            Mount("-u", mountPoint);
        }
    }

    [Fact]
    public void ADivergingRunStopsWithTheStepAndLearningRateAndSavesNoNonFiniteWeights()
    {
        var output = Path.Combine(dir, "diverging");
        var result = CliProcess.Run(Replace(Replace(TrainArgs(output, maxSteps: 40), "--learning_rate", "1e6"), "--save_steps", "2"),
            environment: SameThreads);
        Assert.True(result.ExitCode == 1, result.Stdout + result.Stderr);
        var line = Assert.Single(result.StderrLines);
        Assert.True(Regex.IsMatch(line, @"^llm-embedder: error: step \d+: the (loss|gradient norm|weights) .*not finite.* at learning rate [0-9.]+(E[+-][0-9]+)?; lower --learning_rate"), line);
        Assert.False(Directory.Exists(Path.Combine(output, ModelFolder.TiedEncoderFolder)), "a diverged model was saved");
        foreach (var checkpoint in Directory.EnumerateDirectories(output, "checkpoint-*"))
        {
            var weights = Safetensors.Read(Path.Combine(checkpoint, ModelFolder.TiedEncoderFolder, "model.safetensors"));
            try
            {
                foreach (var (name, tensor) in weights)
                    Assert.True(TorchSharp.torch.isfinite(tensor).all().item<bool>(), $"{checkpoint}: {name} is not finite");
            }
            finally
            {
                foreach (var tensor in weights.Values) tensor.Dispose();
            }
        }
    }

    private static List<LossPoint> Losses(string output) =>
        TrainerState.Load(Path.Combine(output, CheckpointFolders.TrainerStateFile)).LossHistory;

    private static string[] Replace(string[] args, string flag, string value)
    {
        var copy = args.ToArray();
        copy[Array.IndexOf(copy, flag) + 1] = value;
        return copy;
    }

    private static void Mount(params string[] args)
    {
        var start = new ProcessStartInfo(args[0] == "-u" ? "umount" : "mount") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args[0] == "-u" ? args[1..] : args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{start.FileName} {string.Join(' ', start.ArgumentList)}: {error}");
    }

    [GeneratedRegex(@"llm-embedder: stopped at step (\d+); resume with --resume_from_checkpoint latest")]
    private static partial Regex StoppedMessage();

    private const int SigInt = 2, SigTerm = 15;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>
    /// The CLI as a terminal's foreground job: its own session and process group, SIGINT and SIGTERM at their default
    /// disposition (a test host started from a non-interactive shell's background job inherits SIGINT ignored, and .NET
    /// keeps an ignored signal ignored), output read line by line as it comes.
    /// </summary>
    private sealed class SignalledRun : IDisposable
    {
        private readonly Process process;
        private readonly ConcurrentQueue<string> stdout = new();
        private readonly ConcurrentQueue<string> stderr = new();

        private SignalledRun(Process process)
        {
            this.process = process;
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) stdout.Enqueue(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) stderr.Enqueue(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public static SignalledRun Start(string[] args)
        {
            var start = new ProcessStartInfo("perl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[]
                     {
                         "-MPOSIX", "-e", "$SIG{INT} = 'DEFAULT'; $SIG{TERM} = 'DEFAULT'; POSIX::setsid() or die \"setsid: $!\"; exec @ARGV or die \"exec: $!\"",
                         "dotnet", Path.Combine(AppContext.BaseDirectory, "llm-embedder.dll"),
                     })
                start.ArgumentList.Add(arg);
            foreach (var arg in args) start.ArgumentList.Add(arg);
            foreach (var (name, value) in SameThreads) start.Environment[name] = value;
            return new SignalledRun(Process.Start(start)!);
        }

        public void WaitForOutput(string text, bool inStderr = false)
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (!(inStderr ? stderr : stdout).Any(line => line.Contains(text, StringComparison.Ordinal)))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                    Assert.Fail($"no '{text}' in the output (exited: {process.HasExited}):\n{string.Join('\n', stdout)}\n{string.Join('\n', stderr)}");
                Thread.Sleep(2);
            }
        }

        /// <summary>Bit 2 of SigIgn in /proc/PID/status is SIGINT.</summary>
        public void AssertSigIntIsNotIgnored()
        {
            var line = File.ReadLines($"/proc/{process.Id}/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            ulong ignored = Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16);
            Assert.True((ignored & (1UL << (SigInt - 1))) == 0, $"SIGINT is ignored in the CLI process ({line})");
        }

        /// <summary>As a terminal's Ctrl-C: the signal to the whole process group (perl exec'd the CLI as the group's leader).</summary>
        public void SignalGroup(int signal) => Assert.Equal(0, kill(-process.Id, signal));

        public void SignalProcess(int signal) => Assert.Equal(0, kill(process.Id, signal));

        public CliProcess.Result Wait()
        {
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("the CLI did not stop within 2 minutes of the signal");
            }
            process.WaitForExit();   // the output's last lines
            return new CliProcess.Result(process.ExitCode, string.Join('\n', stdout), string.Join('\n', stderr));
        }

        public void Dispose()
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.Dispose();
        }
    }
}

/// <summary>A test that needs root (to mount a tmpfs); skipped, saying why, elsewhere or where mounting is not allowed.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Unavailable = new(WhyNotRoot);

    public RootFactAttribute()
    {
        if (Unavailable.Value is { } reason) Skip = reason;
    }

    [DllImport("libc")]
    private static extern uint geteuid();

    private static string? WhyNotRoot()
    {
        if (geteuid() != 0) return "needs root to mount a small tmpfs (a full disk)";
        var probe = Directory.CreateTempSubdirectory("llm-embedder-mount-probe").FullName;
        try
        {
            using var mount = Process.Start(new ProcessStartInfo("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]) { RedirectStandardError = true })!;
            var error = mount.StandardError.ReadToEnd();
            mount.WaitForExit();
            if (mount.ExitCode != 0) return $"mounting a tmpfs failed here: {error.Trim()}";
            using var umount = Process.Start("umount", [probe]);
            umount.WaitForExit();
            return null;
        }
        finally
        {
            Directory.Delete(probe);
        }
    }
}
