module github.com/backbeat/backbeat/cmd/backbeat

go 1.26.0

replace github.com/backbeat/backbeat/proto => ../../proto
replace github.com/backbeat/backbeat/pkg => ../../pkg
replace github.com/backbeat/backbeat/services/audio => ../../services/audio
replace github.com/backbeat/backbeat/services/render-coordinator => ../../services/render-coordinator
replace github.com/backbeat/backbeat/services/gpu-renderer => ../../services/gpu-renderer
replace github.com/backbeat/backbeat/services/cdn => ../../services/cdn
replace github.com/backbeat/backbeat/services/thumbnail => ../../services/thumbnail
replace github.com/backbeat/backbeat/services/api => ../../services/api

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/chromedp/chromedp v0.23.0
	github.com/dustin/go-humanize v1.0.1
	github.com/glebarez/go-sqlite v1.21.2
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/glebarez/sqlite v1.11.0
	github.com/google/go-tpm v0.9.8
	github.com/google/uuid v1.6.0
	github.com/jackc/pgpassfile v1.0.0
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761
	github.com/jackc/pgx/v5 v5.10.0
	github.com/jackc/puddle/v2 v2.2.2
	github.com/jinzhu/inflection v1.0.0
	github.com/jinzhu/now v1.1.5
	github.com/klauspost/compress v1.20.3
	github.com/klauspost/cpuid/v2 v2.4.0
	github.com/klauspost/crc32 v1.3.0
	github.com/mattn/go-isatty v0.0.22
	github.com/minio/crc64nvme v1.1.1
	github.com/minio/highwayhash v1.0.4
	github.com/minio/md5-simd v1.1.2
	github.com/minio/minio-go/v7 v7.4.1
	github.com/nats-io/jwt/v2 v2.8.2
	github.com/nats-io/nats-server/v2 v2.15.2
	github.com/nats-io/nats.go v1.55.0
	github.com/nats-io/nkeys v0.4.16
	github.com/nats-io/nuid v1.0.1
	github.com/philhofer/fwd v1.2.0
	github.com/prometheus/client_golang v1.23.2
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec
	github.com/rs/xid v1.6.0
	github.com/stretchr/testify v1.12.1
	github.com/tinylib/msgp v1.6.4
	github.com/zeebo/xxh3 v1.1.0
	go.uber.org/multierr v1.10.0
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/crypto v0.58.0
	golang.org/x/image v0.47.0
	golang.org/x/net v0.60.0
	golang.org/x/sync v0.24.0
	golang.org/x/sys v0.49.0
	golang.org/x/text v0.43.0
	golang.org/x/time v0.16.0
	google.golang.org/protobuf v1.36.12
	gopkg.in/ini.v1 v1.67.3
	gorm.io/driver/postgres v1.6.3
	gorm.io/gorm v1.31.2
	modernc.org/libc v1.22.5
	modernc.org/mathutil v1.5.0
	modernc.org/memory v1.5.0
	modernc.org/sqlite v1.23.1
)

require (
	github.com/backbeat/backbeat/proto v0.0.0
	github.com/backbeat/backbeat/pkg v0.0.0
)

require (
	github.com/backbeat/backbeat/services/audio v0.0.0
	github.com/backbeat/backbeat/services/render-coordinator v0.0.0
	github.com/backbeat/backbeat/services/gpu-renderer v0.0.0
	github.com/backbeat/backbeat/services/cdn v0.0.0
	github.com/backbeat/backbeat/services/thumbnail v0.0.0
	github.com/backbeat/backbeat/services/api v0.0.0
)
