// A minimal getEccSoapServer for the wire tests, on code that Debian's soapcpp2
// generates from ecc.h (server side, plain functions) and Debian's libgsoap++.
//
// The state machine is GET-PROTOCOL.md's, without boards or configuration files:
// transitions take no time, a transition not allowed from the state is ignored
// (ErrorCode 0, "", no change), Describe refuses a configID without a describe
// SubConfigId. One request per connection, single-threaded.
//
// Usage: ecc_server PORT   (0: a free port). Prints "listening on 127.0.0.1:PORT".

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ecc.nsmap"
#include "soapH.h"

namespace {

enum State { OFF = 0, IDLE = 1, DESCRIBED = 2, PREPARED = 3, READY = 4, RUNNING = 5, PAUSED = 6 };

int state = IDLE;
bool exiting = false;

const char *const DESCRIBE_TEXT = "<DataSenderSet>\n\t<DataSender id=\"CoBo[0]\" />\n</DataSenderSet>";
const char *const CONFIG_IDS =
    "<ConfigIdSet>\n"
    "\t<ConfigId><SubConfigId type=\"describe\">cobo0</SubConfigId>"
    "<SubConfigId type=\"prepare\">experiment</SubConfigId>"
    "<SubConfigId type=\"configure\">experiment</SubConfigId></ConfigId>\n"
    "</ConfigIdSet>";

void answer(ecc__ResponseText &response, int code, const std::string &message,
            const std::string &text) {
    response.ErrorCode = code;
    response.ErrorMessage = message;
    response.Text = text;
}

// Whether configID names a describe configuration: <SubConfigId type="describe">NAME<.
bool names_describe(const std::string &config_id) {
    const std::string tag = "<SubConfigId type=\"describe\">";
    std::string::size_type at = config_id.find(tag);
    if (at == std::string::npos) return false;
    at += tag.size();
    std::string::size_type end = config_id.find('<', at);
    return end != std::string::npos && end > at &&
           config_id.find_first_not_of(" \t\r\n", at) < end;
}

// Move from one of the allowed states to `target`; any other state ignores the call.
int step(ecc__ResponseText &response, bool allowed, int target, const std::string &text = "") {
    if (allowed) {
        state = target;
        answer(response, 0, "", text);
    } else {
        answer(response, 0, "", "");
    }
    return SOAP_OK;
}

}  // namespace

int ecc__ServerExit(struct soap *, ecc__Response &response) {
    response.ErrorCode = 0;
    response.ErrorMessage = "";
    exiting = true;
    return SOAP_OK;
}

int ecc__GetState(struct soap *, ecc__ResponseState &response) {
    response.ErrorCode = 0;
    response.ErrorMessage = "";
    response.State = state;
    response.Transition = 0;
    return SOAP_OK;
}

int ecc__GetConfigIDs(struct soap *, ecc__ResponseText &response) {
    answer(response, 0, "", CONFIG_IDS);
    return SOAP_OK;
}

int ecc__Describe(struct soap *, std::string configID, std::string, ecc__ResponseText &response) {
    if (state != IDLE) return step(response, false, state);
    if (!names_describe(configID)) {
        answer(response, 1, "Configuration identifier '" + configID + "' is not valid.", "");
        return SOAP_OK;
    }
    return step(response, true, DESCRIBED, DESCRIBE_TEXT);
}

int ecc__Prepare(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == DESCRIBED, PREPARED);
}

int ecc__Configure(struct soap *, std::string, std::string table, ecc__ResponseText &response) {
    return step(response, state == PREPARED, READY, table + "\n<ConfigSet></ConfigSet>");
}

int ecc__Start(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == READY, RUNNING);
}

int ecc__Stop(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == RUNNING || state == PAUSED, READY);
}

int ecc__Pause(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == RUNNING, PAUSED);
}

int ecc__Resume(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == PAUSED, RUNNING);
}

int ecc__Breakup(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    return step(response, state == OFF || state == READY || state == RUNNING || state == PAUSED,
                PREPARED);
}

int ecc__Undo(struct soap *, std::string, std::string, ecc__ResponseText &response) {
    if (state == PREPARED) return step(response, true, DESCRIBED);
    return step(response, state == DESCRIBED, IDLE);
}

int ecc__Special(struct soap *, std::string command, std::string, ecc__ResponseText &response) {
    if (command == "asad-inject" || command == "connect" || command == "write" ||
        command == "writereg") {
        answer(response, 0, "", "");
    } else {
        answer(response, 1, "Special command '" + command + "' is unknown.", "");
    }
    return SOAP_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = std::atoi(argv[1]);
    struct soap *soap = soap_new();
    soap->bind_flags = SO_REUSEADDR;
    soap->accept_timeout = 0;  // wait for connections forever
    soap->recv_timeout = 10;   // a client that stops sending does not hold the server
    soap->send_timeout = 10;
    if (!soap_valid_socket(soap_bind(soap, "127.0.0.1", port, 16))) {
        soap_print_fault(soap, stderr);
        return 1;
    }
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    if (getsockname(soap->master, reinterpret_cast<struct sockaddr *>(&address), &length) != 0) {
        std::perror("getsockname");
        return 1;
    }
    // GSOAP_VERSION is 208124 for 2.8.124.
    std::printf("listening on 127.0.0.1:%d (gSOAP %d.%d.%d)\n", ntohs(address.sin_port),
                GSOAP_VERSION / 100000, GSOAP_VERSION / 1000 % 100, GSOAP_VERSION % 1000);
    std::fflush(stdout);
    while (!exiting) {
        if (!soap_valid_socket(soap_accept(soap))) {
            soap_print_fault(soap, stderr);
            return 1;
        }
        if (soap_serve(soap) != SOAP_OK) soap_print_fault(soap, stderr);  // answered with a Fault
        soap_destroy(soap);
        soap_end(soap);
    }
    soap_free(soap);
    return 0;
}
