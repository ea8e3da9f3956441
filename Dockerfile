# syntax=docker/dockerfile:1
#
# One image recipe for every Ally service, chosen by the SERVICE build arg:
#
#   docker build --build-arg SERVICE=identity -t ally/identity .
#   docker run ally/identity            # starts the service
#   docker run ally/identity migrate    # runs its migrations, then exits
#
# SERVICE is one of: gateway, identity, chat, billing, privacy, notify
# (any directory under services/ that builds to dist/main.js).

ARG NODE_IMAGE=node:20-bookworm-slim
# The npm that wrote package-lock.json (npm 11: dependencies' install scripts
# run only when approved through "allowScripts" in package.json).
ARG NPM_VERSION=11.19.1

FROM ${NODE_IMAGE} AS base
ARG NPM_VERSION
RUN npm install --global "npm@${NPM_VERSION}" && npm cache clean --force
WORKDIR /app

# Only the manifests, laid out as in the repo, so that `npm ci` stays cached
# until a package.json or the lockfile changes.
FROM base AS manifests
COPY . /src
RUN set -eu; \
    mkdir -p /out; \
    cp /src/package.json /src/package-lock.json /out/; \
    cd /src; \
    for f in libs/*/package.json services/*/package.json tools/emulators/package.json; do \
      mkdir -p "/out/$(dirname "$f")"; cp "$f" "/out/$f"; \
    done

# Stage 1: install everything and build every workspace (swc -> <pkg>/dist).
# Identical for all services, so BuildKit builds it once for all six images.
FROM base AS build
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
RUN npm run build
ARG SERVICE
RUN set -eu; \
    if [ -z "${SERVICE:-}" ] || [ ! -f "services/${SERVICE}/dist/main.js" ]; then \
      echo "SERVICE='${SERVICE:-}': expected services/<SERVICE>/dist/main.js (gateway, identity, chat, billing, privacy, notify)" >&2; \
      exit 1; \
    fi; \
    mkdir -p "/runtime/services/${SERVICE}"; \
    for lib in libs/*/; do \
      lib="${lib%/}"; mkdir -p "/runtime/${lib}"; \
      cp "${lib}/package.json" "/runtime/${lib}/"; \
      if [ -d "${lib}/dist" ]; then cp -R "${lib}/dist" "/runtime/${lib}/"; fi; \
    done; \
    cp "services/${SERVICE}/package.json" "/runtime/services/${SERVICE}/"; \
    cp -R "services/${SERVICE}/dist" "/runtime/services/${SERVICE}/"; \
    # Files a service reads at run time beside its code: notify's mail templates, billing's
    # plans (PLANS_FILE), chat's development model catalog (production mounts its own), the
    # gateway's script for the pages mail links open.
    for dir in templates config web; do \
      if [ -d "services/${SERVICE}/${dir}" ]; then cp -R "services/${SERVICE}/${dir}" "/runtime/services/${SERVICE}/"; fi; \
    done

# Stage 2: production dependencies + compiled output only; no compilers,
# no sources, no dev dependencies. Code is owned by root and read-only for
# the runtime user, so the container also works with a read-only root fs.
FROM base AS runtime
ARG SERVICE
# NODE_OPTIONS: the flags of tools/scripts/node-flags.mjs (why: there).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=32 \
    ALLY_SERVICE=${SERVICE}
# All workspace manifests are needed for `npm ci` to match the lockfile; only
# the selected service's code is copied below.
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY --from=build /runtime/ ./
# uid/gid 1000 is the image's `node` user; numeric so that Kubernetes
# runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# exec: node becomes the process that receives SIGTERM. Arguments after the
# image name (e.g. `migrate`) are passed through to main.js.
ENTRYPOINT ["/bin/sh", "-c", "exec node \"services/${ALLY_SERVICE}/dist/main.js\" \"$@\"", "--"]
CMD []
