using System.Runtime.InteropServices;

namespace LlmEmbedder.Distributed;

/// <summary>
/// The ranks of an <c>mpirun</c> job, over Open MPI's C library (libmpi.so.40) called directly: the MPI.NET
/// package is Windows-only, and the handful of calls training needs do not justify a binding. In Open MPI a
/// predefined handle (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) is the address of an exported global.
/// </summary>
public sealed unsafe partial class MpiProcessGroup : IProcessGroup
{
    private const string LibraryName = "libmpi.so.40";
    private const int MpiSuccess = 0;
    private const int MpiThreadSerialized = 2;
    // One MPI call takes an int count; larger buffers go in pieces.
    private const int MaxCount = 1 << 28;

    private readonly Api api;
    private bool finalized;

    public int Rank { get; }
    public int WorldSize { get; }
    public bool StartupAgreed { get; private set; }
    public bool StartupFailed { get; private set; }

    /// <summary>True when this process was started by Open MPI's mpirun (or another launcher that sets its environment).</summary>
    public static bool LaunchedByMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null;

    /// <summary>Initialises MPI (once per process) and joins MPI_COMM_WORLD.</summary>
    public MpiProcessGroup()
    {
        api = Api.Load();
        int initialized;
        Check(api.Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            int provided;
            // Only the training thread calls MPI, but not necessarily the thread that initialised it.
            Check(api.InitThread(null, null, MpiThreadSerialized, &provided), "MPI_Init_thread");
        }
        int rank, size;
        Check(api.CommRank(api.CommWorld, &rank), "MPI_Comm_rank");
        Check(api.CommSize(api.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
    }

    public void AllReduceSum(Span<float> values)
    {
        fixed (float* data = values)
            for (long start = 0; start < values.Length; start += MaxCount)
                Check(api.Allreduce(InPlace, data + start, (int)Math.Min(MaxCount, values.Length - start), api.Float, api.Sum, api.CommWorld), "MPI_Allreduce");
    }

    public void AllReduceSum(Span<double> values)
    {
        fixed (double* data = values)
            for (long start = 0; start < values.Length; start += MaxCount)
                Check(api.Allreduce(InPlace, data + start, (int)Math.Min(MaxCount, values.Length - start), api.Double, api.Sum, api.CommWorld), "MPI_Allreduce");
    }

    public void AllGather(ReadOnlySpan<float> local, Span<float> all)
    {
        if ((long)local.Length * WorldSize != all.Length)
            throw new ArgumentException($"all-gather of {local.Length} values from {WorldSize} ranks into {all.Length}");
        if (local.Length > MaxCount) throw new ArgumentException($"all-gather of {local.Length} values: at most {MaxCount} per rank");
        fixed (float* send = local)
        fixed (float* receive = all)
            Check(api.Allgather(send, local.Length, api.Float, receive, local.Length, api.Float, api.CommWorld), "MPI_Allgather");
    }

    public void Broadcast(Span<byte> buffer, int root)
    {
        fixed (byte* data = buffer)
            for (long start = 0; start < buffer.Length; start += MaxCount)
                Check(api.Bcast(data + start, (int)Math.Min(MaxCount, buffer.Length - start), api.Byte, root, api.CommWorld), "MPI_Bcast");
    }

    public void Barrier() => Check(api.Barrier(api.CommWorld), "MPI_Barrier");

    public int? AgreeOnStartup(bool failedHere)
    {
        if (StartupAgreed) throw new InvalidOperationException("the startup agreement happens once");
        StartupAgreed = true;
        int lowestFailed = failedHere ? Rank : int.MaxValue;
        Check(api.Allreduce(InPlace, &lowestFailed, 1, api.Int, api.Min, api.CommWorld), "MPI_Allreduce");
        StartupFailed = lowestFailed != int.MaxValue;
        return StartupFailed ? lowestFailed : null;
    }

    public void Abort(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        api.Abort(api.CommWorld, exitCode);
        Environment.Exit(exitCode);   // MPI_Abort does not return; this is for a library that does
    }

    /// <summary>MPI_Finalize: every rank must reach it on a normal exit, or mpirun reports the job as failed.</summary>
    public void Dispose()
    {
        if (finalized) return;
        finalized = true;
        int done;
        if (api.Finalized(&done) == MpiSuccess && done == 0) api.Finalize();
    }

    private static void* InPlace => (void*)1;   // MPI_IN_PLACE in Open MPI's mpi.h

    private static void Check(int code, string call)
    {
        // The default error handler (MPI_ERRORS_ARE_FATAL) aborts before returning an error; this is a safety net.
        if (code != MpiSuccess) throw new InvalidOperationException($"{call} failed with MPI error {code}");
    }

    /// <summary>The entry points and predefined handles, resolved once from a library loaded with RTLD_GLOBAL.</summary>
    private sealed partial class Api
    {
        public required delegate* unmanaged<int*, int> Initialized;
        public required delegate* unmanaged<int*, byte***, int, int*, int> InitThread;
        public required delegate* unmanaged<int*, int> Finalized;
        public required delegate* unmanaged<int> Finalize;
        public required delegate* unmanaged<nint, int*, int> CommRank;
        public required delegate* unmanaged<nint, int*, int> CommSize;
        public required delegate* unmanaged<void*, void*, int, nint, nint, nint, int> Allreduce;
        public required delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> Allgather;
        public required delegate* unmanaged<void*, int, nint, int, nint, int> Bcast;
        public required delegate* unmanaged<nint, int> Barrier;
        public required delegate* unmanaged<nint, int, int> Abort;
        public required nint CommWorld, Float, Double, Int, Byte, Sum, Min;

        private static Api? loaded;

        public static Api Load()
        {
            if (loaded is not null) return loaded;
            // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve ompi_* symbols from the already loaded libmpi;
            // .NET's own loading (RTLD_LOCAL) hides them and MPI_Init then fails to open its components.
            nint library = dlopen(LibraryName, RtldNow | RtldGlobal);
            if (library == 0)
                throw new EmbedderException($"{LibraryName}: cannot load Open MPI ({Marshal.PtrToStringUTF8(dlerror())}); " +
                                            "install it with build/install-deps.sh (Debian package libopenmpi3)");
            nint Export(string name) => NativeLibrary.GetExport(library, name);
            loaded = new Api
            {
                Initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized"),
                InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread"),
                Finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized"),
                Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize"),
                CommRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank"),
                CommSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size"),
                Allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce"),
                Allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Export("MPI_Allgather"),
                Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast"),
                Barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier"),
                Abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort"),
                CommWorld = Export("ompi_mpi_comm_world"),
                Float = Export("ompi_mpi_float"),
                Double = Export("ompi_mpi_double"),
                Int = Export("ompi_mpi_int"),
                Byte = Export("ompi_mpi_byte"),
                Sum = Export("ompi_mpi_op_sum"),
                Min = Export("ompi_mpi_op_min"),
            };
            return loaded;
        }

        private const int RtldNow = 2, RtldGlobal = 0x100;

        [LibraryImport("libc.so.6", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
        private static partial nint dlopen(string file, int mode);

        [LibraryImport("libc.so.6", EntryPoint = "dlerror")]
        private static partial nint dlerror();
    }
}
