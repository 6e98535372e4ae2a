// Command xdsclient talks to a real istiod the way a sidecar does, for the conformance tests:
//
//	xdsclient csr --addr HOST:PORT --server-name NAME --root-cert FILE --token-file FILE [--cluster-id ID]
//	    asks istiod's CA (IstioCertificateService/CreateCertificate, over TLS verified against FILE) for a
//	    workload certificate, authenticated with the ServiceAccount token in --token-file; prints the issued
//	    chain (PEM, leaf first). The private key stays in memory and is never printed.
//	xdsclient xds --addr HOST:PORT --node-id ID --namespace NS --istio-version V [--cluster-id ID] [--labels K=V,...]
//	    connects to istiod's plain-text xDS port as the proxy --node-id (a sidecar~ or router~ id) with the workload
//	    labels --labels and prints, as JSON, the names of the clusters and listeners istiod sends it, and the filter
//	    chains of its inbound listener (virtualInbound) with the transport protocol each matches ("tls",
//	    "raw_buffer"): the mTLS mode istiod applies to the sidecar.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	security "istio.io/api/security/v1alpha1"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	// The sidecar's inbound listener, where istiod puts the mTLS mode of the workload.
	inboundListener = "virtualInbound"
	timeout         = 30 * time.Second
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: xdsclient csr|xds [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "csr":
		err = runCSR(os.Args[2:])
	case "xds":
		err = runXDS(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use csr or xds", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "xdsclient:", err)
	os.Exit(1)
}

func runCSR(args []string) error {
	flags := flag.NewFlagSet("csr", flag.ExitOnError)
	addr := flags.String("addr", "", "istiod's secure gRPC address (15012 in a pod)")
	serverName := flags.String("server-name", "", "the name istiod's serving certificate must carry")
	rootCert := flags.String("root-cert", "", "PEM file of the root that istiod's serving certificate chains to")
	tokenFile := flags.String("token-file", "", "file holding a ServiceAccount token with audience istio-ca")
	clusterID := flags.String("cluster-id", "", "the ClusterID header: the cluster whose API server knows the token")
	_ = flags.Parse(args)

	roots, err := certPool(*rootCert)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	csr, err := newCSR()
	if err != nil {
		return err
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: *serverName, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	headers := []string{"authorization", "Bearer " + strings.TrimSpace(string(token))}
	if *clusterID != "" {
		headers = append(headers, "ClusterID", *clusterID)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, headers...)
	response, err := security.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx,
		&security.IstioCertificateRequest{Csr: csr, ValidityDuration: int64(time.Hour / time.Second)})
	if err != nil {
		return err
	}
	for _, certificate := range response.CertChain {
		fmt.Print(strings.TrimSpace(certificate) + "\n")
	}
	return nil
}

func certPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return pool, nil
}

// newCSR returns a PEM CSR for a fresh P-256 key. istiod puts the caller's identity (from the token) into the
// certificate, whatever the CSR names, so the CSR carries a placeholder SPIFFE URI only to be well-formed.
func newCSR() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	placeholder, _ := url.Parse("spiffe://cluster.local/ns/default/sa/default")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{placeholder}}, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

func runXDS(args []string) error {
	flags := flag.NewFlagSet("xds", flag.ExitOnError)
	addr := flags.String("addr", "", "istiod's plain-text xDS address (15010 in a pod)")
	nodeID := flags.String("node-id", "", "sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local")
	namespace := flags.String("namespace", "", "the sidecar's namespace")
	clusterID := flags.String("cluster-id", "Kubernetes", "the sidecar's cluster")
	istioVersion := flags.String("istio-version", "", "the sidecar's Istio version (istiod adapts its config to it)")
	labels := flags.String("labels", "app=xdsclient", "the workload's labels, k=v,k=v (a Gateway's selector matches them)")
	_ = flags.Parse(args)

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node, err := proxyNode(*nodeID, *namespace, *clusterID, *istioVersion, *labels)
	if err != nil {
		return err
	}
	names := map[string][]string{}
	var inbound []filterChain
	// Like Envoy: clusters first, then listeners once the clusters arrived.
	for _, typeURL := range []string{clusterType, listenerType} {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
			return err
		}
		resources, err := receive(stream, typeURL)
		if err != nil {
			return err
		}
		for _, value := range resources {
			name, err := resourceName(value, typeURL)
			if err != nil {
				return err
			}
			names[typeURL] = append(names[typeURL], name)
			if typeURL == listenerType && name == inboundListener {
				if inbound, err = inboundChains(value); err != nil {
					return err
				}
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"clusters":              names[clusterType],
		"listeners":             names[listenerType],
		"inbound_filter_chains": inbound,
	})
}

// filterChain is one filter chain of the inbound listener: its name and the transport protocol it matches.
type filterChain struct {
	Name              string `json:"name"`
	TransportProtocol string `json:"transport_protocol"`
}

func inboundChains(value []byte) ([]filterChain, error) {
	var l listener.Listener
	if err := proto.Unmarshal(value, &l); err != nil {
		return nil, err
	}
	chains := make([]filterChain, 0, len(l.GetFilterChains()))
	for _, chain := range l.GetFilterChains() {
		chains = append(chains, filterChain{chain.GetName(), chain.GetFilterChainMatch().GetTransportProtocol()})
	}
	return chains, nil
}

func proxyNode(id, namespace, clusterID, istioVersion, labels string) (*core.Node, error) {
	workloadLabels := map[string]any{}
	for _, pair := range strings.Split(labels, ",") {
		key, value, found := strings.Cut(pair, "=")
		if !found {
			return nil, fmt.Errorf("--labels: %q is not k=v", pair)
		}
		workloadLabels[key] = value
	}
	meta, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":     namespace,
		"CLUSTER_ID":    clusterID,
		"ISTIO_VERSION": istioVersion,
		"LABELS":        workloadLabels,
	})
	if err != nil {
		return nil, err
	}
	return &core.Node{Id: id, Metadata: meta}, nil
}

// receive reads responses until one of typeURL arrives (istiod may push other types in between) and returns its
// resources, serialized.
func receive(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typeURL string) ([][]byte, error) {
	for {
		response, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if response.TypeUrl != typeURL {
			continue
		}
		values := make([][]byte, 0, len(response.Resources))
		for _, resource := range response.Resources {
			values = append(values, resource.Value)
		}
		return values, nil
	}
}

func resourceName(value []byte, typeURL string) (string, error) {
	if typeURL == clusterType {
		var c cluster.Cluster
		err := proto.Unmarshal(value, &c)
		return c.GetName(), err
	}
	var l listener.Listener
	err := proto.Unmarshal(value, &l)
	return l.GetName(), err
}
