using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace LlmEmbedder;

/// <summary>The few libc calls .NET has no equivalent for (this project runs on Linux only).</summary>
internal static partial class Posix
{
    private const int WriteOk = 2, ExecuteOk = 1;
    private const int ReadOnly = 0, CloseOnExec = 0x80000;
    private const int PermissionDenied = 13, ReadOnlyFileSystem = 30;

    /// <summary>
    /// Why this process could not create entries in <paramref name="folder"/> ("permission denied", "read-only file
    /// system"), or null when it can. access(2) asks the kernel, so root, ACLs and read-only mounts all count.
    /// </summary>
    public static string? CannotCreateIn(string folder)
    {
        if (access(folder, WriteOk | ExecuteOk) == 0) return null;
        return Marshal.GetLastPInvokeError() switch
        {
            PermissionDenied => "permission denied",
            ReadOnlyFileSystem => "read-only file system",
            _ => null,   // anything else (a vanished folder, say) shows up, in our words, when the write itself fails
        };
    }

    /// <summary>
    /// A read handle that takes no lock. .NET's own file opening takes a shared flock, which fails while another process
    /// holds the file with FileShare.None, so a lock file's contents can only be read this way.
    /// </summary>
    public static SafeFileHandle? OpenWithoutLock(string path)
    {
        int fd = open(path, ReadOnly | CloseOnExec);
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    [LibraryImport("libc.so.6", EntryPoint = "access", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int access(string path, int mode);

    [LibraryImport("libc.so.6", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);
}
