# One image with every binary of the workspace (gateway, lb, processor-sim; stack when
# the workspace has it); docker-compose.yml picks the command.
#
# Build stage: the toolchain this repository is tested with (rustc 1.95.0), on Debian 12
# so the binaries link against the same glibc (2.36) as the runtime stage.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions of Cargo.lock.
# strip --strip-debug: the release profile keeps line tables for profiling on a
# workstation; the image drops them (gateway 7.9 MB -> 1.2 MB) and keeps the symbols.
RUN cargo build --release --locked --workspace \
 && mkdir /out /journal \
 && for bin in gateway lb processor-sim stack; do \
      if [ -f "target/release/$bin" ]; then strip --strip-debug -o "/out/$bin" "target/release/$bin"; fi; \
    done \
 && test -x /out/gateway && test -x /out/lb

# Runtime stage: glibc and libgcc_s (all the binaries link), no shell, no package
# manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# The journal's mount point (JOURNAL_DIR), owned by the user that writes it: a named
# volume mounted there starts with this ownership.
COPY --from=build --chown=65532:65532 /journal /journal
USER nonroot
CMD ["/usr/local/bin/gateway"]
