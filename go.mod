module github.com/goipc/goipc

go 1.26.0

require (
	github.com/google/flatbuffers v25.12.19+incompatible
	golang.org/x/sys v0.49.0
)

require github.com/HdrHistogram/hdrhistogram-go v1.4.0
