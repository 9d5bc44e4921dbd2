using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace Serverless.Functions.Hosting;

/// <summary>
/// Request bodies a caller compressed (<c>Content-Encoding: br</c>, <c>gzip</c> or <c>deflate</c>; agents send their
/// round messages as Brotli) are decompressed by ASP.NET Core's request decompression middleware, first in the
/// worker's pipeline. The size limits still hold on what comes out: every body reader stops at its own bound
/// after decompression (<c>JsonBody</c>, <c>BoundedBody</c>), so a small body cannot expand past it. Before it, the
/// body as it arrived is counted, so a round can report the bytes that travelled (<see cref="WireBytesRead"/>).
/// </summary>
internal sealed class CompressedRequestBodies : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, rest) =>
        {
            var counted = new CountingStream(context.Request.Body);
            context.Request.Body = counted;
            context.Features.Set(counted);
            return rest(context);
        });
        app.UseRequestDecompression();
        next(app);
    };

    /// <summary>Bytes of the request body read so far as they arrived, before any decompression; null outside this pipeline.</summary>
    public static long? WireBytesRead(HttpContext context) => context.Features.Get<CountingStream>()?.BytesRead;

    /// <summary>A read-only pass-through that counts what is read.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Counted(inner.Read(buffer, offset, count));
        public override int Read(Span<byte> buffer) => Counted(inner.Read(buffer));
        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Counted(await inner.ReadAsync(buffer.AsMemory(offset, count), cancellationToken));
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Counted(await inner.ReadAsync(buffer, cancellationToken));

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Counted(int read)
        {
            BytesRead += read;
            return read;
        }
    }
}
