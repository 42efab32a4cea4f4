# LockService container image.
#   docker build -t lockservice .
#   docker run --rm -p 8080:8080 -e Redis__ConnectionString=redis-host:6379 lockservice
# Settings are the ones in the HTTP contract, as environment variables with "__" for ":"
# (Redis__ConnectionString, Auth__ApiKeys__0__Key, Auth__ApiKeys__0__Tenant, ...).

# ---- build -------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# Restore first, from the files that decide the package graph only, so that this layer
# is reused from cache as long as no project file or package version changes.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY LockService.Core/LockService.Core.csproj LockService.Core/
COPY LockService.Api/LockService.Api.csproj LockService.Api/
COPY LockService.Client/LockService.Client.csproj LockService.Client/
COPY LockService.Cli/LockService.Cli.csproj LockService.Cli/
RUN dotnet restore LockService.Api/LockService.Api.csproj
RUN dotnet restore LockService.Cli/LockService.Cli.csproj

# Then the sources (.dockerignore keeps bin/, obj/, tests and benchmarks out).
COPY . .
RUN dotnet publish LockService.Api/LockService.Api.csproj -c Release --no-restore -o /app
# lockctl, the command-line client, beside the service (framework-dependent: the runtime image has .NET).
RUN dotnet publish LockService.Cli/LockService.Cli.csproj -c Release --no-restore -o /app/lockctl

# ---- runtime -----------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./

# `docker exec CONTAINER lockctl inspect orders-42` (LOCKSERVICE_URL defaults to this container's service).
RUN printf '#!/bin/sh\nexec dotnet /app/lockctl/lockctl.dll "$@"\n' > /usr/local/bin/lockctl && chmod 755 /usr/local/bin/lockctl
ENV LOCKSERVICE_URL=http://127.0.0.1:8080

ENV ASPNETCORE_URLS=http://+:8080
ENV ASPNETCORE_ENVIRONMENT=Production
EXPOSE 8080

# The aspnet image's unprivileged user "app" (UID 1654, in $APP_UID).
USER $APP_UID

# The image has no curl or wget: the service checks itself. With --healthcheck as its
# first argument it GETs http://127.0.0.1:8080/health/ready and exits 0 on 200, else 1.
# Ready means Redis answers, so a container whose Redis is down reports unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["dotnet", "LockService.Api.dll", "--healthcheck"]

ENTRYPOINT ["dotnet", "LockService.Api.dll"]
